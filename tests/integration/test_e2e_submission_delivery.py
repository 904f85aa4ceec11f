"""End to end, the real engine between a mail program and a real Postfix on the internet side.

A user submits with smtplib (STARTTLS, AUTH) to the engine's submission port; the engine
queues, looks the MX up in the tests' own Knot and delivers to Postfix on 127.0.0.2, which
stores into a Maildir the test reads. Also: Postfix's own `550` for an unknown user comes
back as an RFC 3464 report in the sender's Maildir, and a peer that is down is retried until
it is up (the first time and again after a restart). The queue is inspected the way an
admin does, with `mailstead queue` in its own process.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from harness.e2e import queue_cli, queue_empty, queue_json, submit, wait_until
from harness.engine import EngineProcess
from peers.mail_world import LATER_IP, PEER_IP, MailWorld, mail_world, maildir_messages

pytestmark = pytest.mark.timeout(120)
ALICE = "alice@example.test"
HOSTNAME = "mx.mailstead.test"
# a body that needs dot-stuffing both ways and spans many TCP segments
BODY = "".join(f"line {n:04d} " + "x" * 60 + "\r\n" + (".dot line\r\n" if n % 50 == 0 else "")
               for n in range(400)) + "..two dots\r\n.\r\nlast line\r\n"


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    with mail_world("e2e-sub") as started:
        yield started


@pytest.fixture(scope="module")
def engine(world: MailWorld, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[EngineProcess]:
    settings = world.engine_settings(queue__max_retry=1)         # retry every second
    proc = EngineProcess(tmp_path_factory.mktemp("e2e-sub") / "data", **settings)
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(ALICE)
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def message(to: str, subject: str, body: str = "Hello.\r\n") -> bytes:
    """A message as a mail program writes it, without Date and Message-ID."""
    return (f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            + body).encode()


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def results(engine: EngineProcess, queue_id: str) -> list[str]:
    """The outcomes the engine logged for `queue_id`, in order."""
    return re.findall(rf'"delivery.result".*?"queue_id": "{queue_id}".*?"outcome": "(\w+)"',
                      engine.log_text())


def test_submitted_message_reaches_postfix_whole(world: MailWorld,
                                                 engine: EngineProcess) -> None:
    recipient = "carol@peer.test"
    before = world.peer.count_delivered(recipient)
    sent = message(recipient, "e2e: submission to Postfix", BODY)
    queue_id = submit(engine, ALICE, [recipient], sent)
    wait_until(lambda: world.peer.count_delivered(recipient) > before, 20, "Postfix delivery")
    wait_until(lambda: queue_empty(engine), 10, "an empty queue")

    stored = maildir_messages(world.peer, recipient)[-1]
    # Whole: below Postfix's own lines, exactly our Received, the message as sent, and the
    # Date and Message-ID submission added. Postfix's virtual(8) stores with LF line ends.
    header, body = sent.replace(b"\r\n", b"\n").split(b"\n\n", 1)
    ours = re.escape(f"Received: by {HOSTNAME} (Mailstead) with ESMTPSA id {queue_id};\n"
                     .encode()) + rb"\t[^\n]+\n"
    added = rb"Date: [^\n]+\nMessage-ID: <[^\n]+>\n"
    tail = stored[stored.index(b"Received: by "):]
    assert re.fullmatch(ours + re.escape(header + b"\n") + added + re.escape(b"\n" + body),
                        tail), tail[:600]
    parsed = parse(stored)
    assert parsed["Return-Path"] == f"<{ALICE}>"                # our envelope sender
    assert parsed["Delivered-To"] == recipient
    received = [str(r) for r in parsed.get_all("Received", [])]
    # Postfix's trace on top (it received from us over STARTTLS), ours below it
    assert received[0].startswith(f"from {HOSTNAME} ")
    assert "using TLSv1." in received[0]
    assert "with ESMTPS" in received[0]
    assert received[1].startswith(f"by {HOSTNAME} (Mailstead) with ESMTPSA id {queue_id};")
    # what submission adds (RFC 6409 8): a Message-ID of ours and a current Date
    assert re.fullmatch(rf"<{queue_id}\.[0-9a-f]+@{re.escape(HOSTNAME)}>",
                        str(parsed["Message-ID"]))
    date = email.utils.parsedate_to_datetime(str(parsed["Date"]))
    assert abs(date.timestamp() - time.time()) < 120

    assert results(engine, queue_id) == ["delivered"]
    assert f"remote_host\": \"mx.peer.test[{PEER_IP}]" in engine.log_text()
    assert f"to=<{recipient}>" in world.peer.log_tail(100)
    assert "status=sent (delivered to maildir)" in world.peer.log_tail(100)
    assert queue_cli(engine, "list").strip() == "queue is empty"


def test_postfix_550_becomes_a_dsn_in_the_senders_maildir(world: MailWorld,
                                                          engine: EngineProcess) -> None:
    good, bad = "bob@peer.test", "nobody@peer.test"
    before_bob = world.peer.count_delivered(good)
    before_alice = len(engine.messages(ALICE))
    sent = message(good, "e2e: one of two refused")
    queue_id = submit(engine, ALICE, [good, bad], sent)
    wait_until(lambda: len(engine.messages(ALICE)) > before_alice, 20, "the DSN")
    wait_until(lambda: queue_empty(engine), 10, "an empty queue")
    assert world.peer.count_delivered(good) == before_bob + 1      # the good one got through

    report = parse(engine.messages(ALICE)[-1])
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["To"].addresses[0].addr_spec == ALICE
    assert report["From"].addresses[0].addr_spec == f"MAILER-DAEMON@{HOSTNAME}"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["Return-Path"] == "<>"                           # from the null sender
    parts: list[Any] = list(report.iter_parts())
    human, status, original = parts
    assert human.get_content_type() == "text/plain"
    assert f"<{bad}>: 550 5.1.1" in human.get_content()
    assert f"(reported by mx.peer.test[{PEER_IP}])" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, *per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == f"dns; {HOSTNAME}"
    assert len(per_recipient) == 1                                 # only the refused one
    (failed,) = per_recipient
    assert failed["Final-Recipient"] == f"rfc822; {bad}"
    assert failed["Action"] == "failed"
    assert failed["Status"] == "5.1.1"
    assert failed["Remote-MTA"] == "dns; mx.peer.test"           # RFC 3464 2.3.5
    # Postfix's own words, as it wrote them to its log
    diagnostic = str(failed["Diagnostic-Code"])
    assert diagnostic.startswith(f"smtp; 550 5.1.1 <{bad}>: Recipient address rejected:")
    assert "User unknown in virtual mailbox table" in diagnostic
    assert "User unknown in virtual mailbox table" in world.peer.log_tail(200)
    # the returned headers are those of the message Bob got
    assert original.get_content_type() == "text/rfc822-headers"
    returned = parse(original.get_payload(decode=True))
    delivered = parse(maildir_messages(world.peer, good)[-1])
    assert returned["Subject"] == "e2e: one of two refused"
    assert returned["Message-ID"] == delivered["Message-ID"]
    assert sorted(results(engine, queue_id)) == ["delivered", "failed"]    # one attempt


def deferred_then_delivered(world: MailWorld, engine: EngineProcess, recipient: str) -> None:
    """Submit to `recipient` while later.test's Postfix is down: deferred, listed with its
    reply, retried; then start that Postfix and see a retry deliver it."""
    reports_before = len(engine.messages(ALICE))
    queue_id = submit(engine, ALICE, [recipient], message(recipient, f"e2e: {recipient}"))
    wait_until(lambda: "deferred" in results(engine, queue_id), 15, "a deferral")
    (shown,) = queue_json(engine, "show", queue_id)["recipient_list"]
    reply = str(shown["last_reply"])
    assert (shown["address"], shown["state"]) == (recipient, "queued")
    assert reply.startswith(f"451 4.4.1 Cannot connect to mx.later.test[{LATER_IP}]"), reply
    listing = queue_cli(engine, "list")
    assert f"{queue_id} " in listing
    assert f"<{ALICE}>" in listing
    assert f"({reply})" in listing
    assert f"<{recipient}>" in listing
    wait_until(lambda: results(engine, queue_id).count("deferred") >= 2, 10, "a retry")
    world.later.start()
    wait_until(lambda: world.later.count_delivered(recipient) == 1, 20, "delivery on retry")
    wait_until(lambda: queue_empty(engine), 10, "an empty queue")
    *deferrals, last = results(engine, queue_id)
    assert last == "delivered"
    assert len(deferrals) >= 2
    assert set(deferrals) == {"deferred"}
    assert len(engine.messages(ALICE)) == reports_before      # no bounce, no delay warning
    assert parse(maildir_messages(world.later, recipient)[0])["Subject"] == f"e2e: {recipient}"


def test_peer_down_is_retried_until_it_is_up_and_again_after_a_restart(
        world: MailWorld, engine: EngineProcess) -> None:
    try:
        deferred_then_delivered(world, engine, "alice@later.test")
        world.later.stop()
        deferred_then_delivered(world, engine, "bob@later.test")
    finally:
        world.later.stop()
