"""The mail transaction state machine: what the transcripts do not show."""

from __future__ import annotations

from appliance.outbound import delivery_replies as dr
from appliance.outbound.smtp_client_protocol import Capabilities, Phase, Reply
from appliance.outbound.smtp_client_transaction import MailTransaction
from appliance.outbound.types import OutboundEnvelope, OutboundRecipient, Outcome

PIPELINING = Capabilities(keywords={"PIPELINING": ""})
OK = Reply(250, ("Ok",))


def make(*recipients: OutboundRecipient, caps: Capabilities = PIPELINING) -> MailTransaction:
    envelope = OutboundEnvelope("Q", "a@example.org", recipients, 10)
    return MailTransaction(envelope, b"Subject: x\n\nbody\n", caps, remote="peer[127.0.0.1]",
                           details={"tls": "TLSv1.3"})


def test_steps_carry_the_rfc_5321_timeouts() -> None:
    txn = make(OutboundRecipient("b@peer.test"), OutboundRecipient("c@peer.test"))
    first = txn.start()
    assert first is not None
    assert first.replies == (Phase.MAIL, Phase.RCPT, Phase.RCPT)
    data = txn.receive([OK, OK, OK])
    assert data is not None
    assert data.replies == (Phase.DATA_INIT,)
    body = txn.receive([Reply(354, ("go",))])
    assert body is not None
    assert body.write_phase is Phase.DATA_BLOCK
    assert body.replies == (Phase.DATA_END,)
    assert txn.receive([OK]) is None
    assert [r.outcome for r in txn.results()] == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert txn.results()[0].details == {"tls": "TLSv1.3"}
    assert txn.results()[0].remote_host == "peer[127.0.0.1]"


def test_notify_success_to_a_peer_without_dsn_asks_for_a_relayed_dsn() -> None:
    txn = make(OutboundRecipient("b@peer.test", ("SUCCESS",)), OutboundRecipient("c@peer.test"))
    txn.start()
    txn.receive([OK, OK, OK])
    txn.receive([Reply(354, ("go",))])
    txn.receive([OK])
    first, second = txn.results()
    assert first.details["dsn_relayed"] == "true"
    assert "dsn_relayed" not in second.details


def test_a_recipient_that_cannot_be_sent_fails_alone() -> None:
    txn = make(OutboundRecipient("bad\r\n@peer.test"), OutboundRecipient("c@peer.test"))
    step = txn.start()
    assert step is not None
    assert b"bad" not in step.data
    txn.receive([OK, OK])
    txn.receive([Reply(354, ("go",))])
    txn.receive([OK])
    bad, good = txn.results()
    assert bad.outcome is Outcome.FAILED
    assert bad.reply == dr.BAD_RECIPIENT
    assert good.outcome is Outcome.DELIVERED


def test_a_bad_sender_fails_everything_before_sending() -> None:
    envelope = OutboundEnvelope("Q", "a\n@example.org", (OutboundRecipient("b@peer.test"),), 1)
    txn = MailTransaction(envelope, b"x\n", PIPELINING)
    assert txn.start() is None
    assert txn.results()[0].reply == dr.BAD_SENDER


def test_losing_the_connection_after_the_body_is_uncertain() -> None:
    txn = make(OutboundRecipient("b@peer.test"), OutboundRecipient("c@peer.test"))
    txn.start()
    txn.receive([OK, OK, Reply(550, ("5.1.1 no",))])
    txn.receive([Reply(354, ("go",))])
    txn.abort("451 4.4.2 Timed out")
    assert txn.uncertain == ["b@peer.test"]
    assert [r.outcome for r in txn.results()] == [Outcome.DEFERRED, Outcome.FAILED]


def test_losing_the_connection_before_the_body_is_not_uncertain() -> None:
    txn = make(OutboundRecipient("b@peer.test"))
    txn.start()
    txn.receive([OK, OK])
    txn.abort("451 4.4.2 Lost connection")
    assert txn.uncertain == []
    assert txn.results()[0].outcome is Outcome.DEFERRED


def test_refused_rcpts_after_accepted_mail_need_rset() -> None:
    txn = make(OutboundRecipient("b@peer.test"))
    txn.start()
    assert txn.receive([OK, Reply(550, ("no",))]) is None
    assert txn.needs_rset


def test_a_positive_reply_to_data_is_a_protocol_error_not_a_delivery() -> None:
    txn = make(OutboundRecipient("b@peer.test"))
    txn.start()
    txn.receive([OK, OK])
    assert txn.receive([Reply(250, ("what?",))]) is None
    result = txn.results()[0]
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith("451 4.5.0")
