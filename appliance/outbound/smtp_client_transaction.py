"""One mail transaction as a pure state machine: MAIL, RCPTs, DATA, body -> recipient results.

The driver asks `start()` for the first `Step` (bytes to write, then one timeout phase per
reply to read), hands the replies back to `receive()`, and repeats until it gets None; then
`results()` has one `RecipientResult` per recipient. With PIPELINING (RFC 2920) MAIL and all
RCPTs go in one write; DATA waits for their replies, so no body is sent when every
recipient was refused. `abort()` settles whatever is left when the connection fails.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from appliance.outbound import delivery_replies as dr
from appliance.outbound.downgrade import to_7bit
from appliance.outbound.smtp_client_commands import (
    CommandError,
    data_payload,
    is_8bit,
    mail_command,
    needs_smtputf8,
    rcpt_command,
)
from appliance.outbound.smtp_client_protocol import Capabilities, Phase, Reply
from appliance.outbound.types import OutboundEnvelope, Outcome, RecipientResult

CLOSING = 421     # RFC 5321 3.8: the peer is closing the transmission channel


@dataclass(frozen=True)
class Step:
    """Write `data` (each block within `write_phase`'s timeout), then read len(replies)."""

    data: bytes
    replies: tuple[Phase, ...]
    write_phase: Phase = Phase.MAIL


class State(enum.Enum):
    MAIL = "mail"            # waiting for the MAIL reply (no pipelining)
    RCPT = "rcpt"            # waiting for one RCPT reply (no pipelining)
    ENVELOPE = "envelope"    # waiting for MAIL + every RCPT reply (pipelining)
    DATA = "data"            # waiting for 354
    BODY = "body"            # waiting for the reply to the final dot
    DONE = "done"


class MailTransaction:
    """The client side of one SMTP mail transaction (RFC 5321 3.3) for one message."""

    def __init__(self, envelope: OutboundEnvelope, message: bytes, caps: Capabilities, *,
                 remote: str = "", details: Mapping[str, str] | None = None) -> None:
        self.envelope = envelope
        self.caps = caps
        self.remote = remote
        self.details = dict(details or {})
        self.state = State.MAIL
        self.body_sent = False       # the body went out: a lost reply now is ambiguous
        self.closing = False         # the peer said 421: the session cannot go on
        self.needs_rset = False      # MAIL was accepted but the transaction ended early
        self._message = message
        self._payload = b""
        self._rcpt_lines: list[bytes] = []
        self._lost_after_body = False
        self._results: dict[int, RecipientResult] = {}
        self._to_send: list[int] = []      # recipient indexes whose RCPT goes out
        self._accepted: list[int] = []
        self._next_rcpt = 0

    # -- driving -----------------------------------------------------------------------------

    def start(self) -> Step | None:
        """The first step, or None when the transaction was settled without the peer."""
        if is_8bit(self.envelope, self._message) and not self.caps.has("8BITMIME"):
            converted = to_7bit(self._message)      # RFC 6152 3: convert or bounce
            if converted is None and not needs_smtputf8(self.envelope, self._message):
                self._settle_all(dr.render(dr.NO_8BITMIME, remote=self.remote))
                return None
            self._message = converted or self._message
        payload = data_payload(self._message)
        refusal = self._refusal(len(payload) - 3)
        if refusal is not None:
            self._settle_all(refusal)
            return None
        try:
            mail = mail_command(self.envelope, self.caps, size=len(payload) - 3,
                                smtputf8=self._smtputf8,
                                eightbit=is_8bit(self.envelope, self._message))
        except CommandError:
            self._settle_all(dr.BAD_SENDER)
            return None
        self._payload = payload
        rcpts = self._rcpt_commands()
        if not rcpts:
            self.state = State.DONE
            return None
        self._rcpt_lines = rcpts
        if self.caps.has("PIPELINING"):
            self.state = State.ENVELOPE
            return Step(mail + b"".join(rcpts),
                        (Phase.MAIL, *(Phase.RCPT for _ in rcpts)))
        return Step(mail, (Phase.MAIL,))

    def receive(self, replies: list[Reply]) -> Step | None:
        """Take the replies to the last step; return the next step or None when done.

        Fewer replies than asked for are allowed only when the last one is a 421.
        """
        if replies and replies[-1].code == CLOSING:
            self.closing = True
        handler = {State.MAIL: self._on_mail, State.RCPT: self._on_rcpt,
                   State.ENVELOPE: self._on_envelope, State.DATA: self._on_data,
                   State.BODY: self._on_body}[self.state]
        step = handler(replies)
        if self.closing:
            self.abort(replies[-1].text)
            return None
        return step

    def abort(self, reply: str) -> None:
        """The connection failed: every unsettled recipient gets `reply` (temporary)."""
        if self.state is State.BODY and len(self._results) < len(self.envelope.recipients):
            self._lost_after_body = True
        for index in range(len(self.envelope.recipients)):
            if index not in self._results:
                self._settle(index, reply, Outcome.DEFERRED)
        self.state = State.DONE

    def results(self) -> list[RecipientResult]:
        """One result per recipient, in envelope order (call once the transaction is done)."""
        assert len(self._results) == len(self.envelope.recipients), "transaction not done"
        return [self._results[i] for i in range(len(self.envelope.recipients))]

    @property
    def uncertain(self) -> list[str]:
        """Recipients that got the body but no final reply: the peer may have the message."""
        if not self._lost_after_body:
            return []
        return [self.envelope.recipients[i].address for i in self._accepted]

    # -- states ------------------------------------------------------------------------------

    def _on_mail(self, replies: list[Reply]) -> Step | None:
        mail = replies[0]
        if not mail.positive:
            self._settle_all(mail.text, mail.outcome)
            return None
        self.state = State.RCPT
        return Step(self._rcpt_lines[0], (Phase.RCPT,))

    def _on_rcpt(self, replies: list[Reply]) -> Step | None:
        self._rcpt_reply(self._to_send[self._next_rcpt], replies[0])
        self._next_rcpt += 1
        if self._next_rcpt < len(self._to_send) and not self.closing:
            return Step(self._rcpt_lines[self._next_rcpt], (Phase.RCPT,))
        return self._after_envelope()

    def _on_envelope(self, replies: list[Reply]) -> Step | None:
        mail, rcpt_replies = replies[0], replies[1:]
        if not mail.positive:
            # RFC 2920 3.1: the RCPTs after a refused MAIL are refused too; MAIL says why.
            self._settle_all(mail.text, mail.outcome)
            return None
        for index, reply in zip(self._to_send, rcpt_replies, strict=False):
            self._rcpt_reply(index, reply)
        return self._after_envelope()

    def _after_envelope(self) -> Step | None:
        if self.closing or not self._accepted:
            self.needs_rset = not self.closing
            self.state = State.DONE
            return None
        self.state = State.DATA
        return Step(b"DATA\r\n", (Phase.DATA_INIT,))

    def _on_data(self, replies: list[Reply]) -> Step | None:
        reply = replies[0]
        if reply.code != 354:
            self.needs_rset = not self.closing
            text = reply.text if not reply.positive else dr.render(
                dr.UNEXPECTED_REPLY, remote=self.remote, stage="DATA", reply=reply.text)
            self._settle_accepted(text, Outcome.DEFERRED if reply.positive
                                  else reply.outcome)
            return None
        self.state = State.BODY
        self.body_sent = True
        return Step(self._payload, (Phase.DATA_END,), write_phase=Phase.DATA_BLOCK)

    def _on_body(self, replies: list[Reply]) -> Step | None:
        reply = replies[0]
        self._settle_accepted(reply.text, reply.outcome)
        return None

    # -- helpers -----------------------------------------------------------------------------

    @property
    def _smtputf8(self) -> bool:
        return self.caps.has("SMTPUTF8") and (
            self.envelope.smtputf8 or needs_smtputf8(self.envelope, self._message))

    def _refusal(self, size: int) -> str | None:
        """A reason to settle every recipient before sending anything, or None."""
        if needs_smtputf8(self.envelope, self._message) and not self.caps.has("SMTPUTF8"):
            return dr.render(dr.SMTPUTF8_REQUIRED, remote=self.remote)
        limit = self.caps.size_limit
        if limit is not None and size > limit:
            return dr.render(dr.MESSAGE_TOO_BIG, remote=self.remote, limit=limit)
        return None

    def _rcpt_commands(self) -> list[bytes]:
        lines: list[bytes] = []
        for index, recipient in enumerate(self.envelope.recipients):
            try:
                lines.append(rcpt_command(recipient, self.caps))
            except CommandError:
                self._settle(index, dr.BAD_RECIPIENT, Outcome.FAILED)
                continue
            self._to_send.append(index)
        return lines

    def _rcpt_reply(self, index: int, reply: Reply) -> None:
        if reply.positive:
            self._accepted.append(index)
        else:
            self._settle(index, reply.text, reply.outcome)

    def _settle_all(self, reply: str, outcome: Outcome | None = None) -> None:
        for index in range(len(self.envelope.recipients)):
            if index not in self._results:
                self._settle(index, reply, outcome or _outcome_of_text(reply))
        self.state = State.DONE

    def _settle_accepted(self, reply: str, outcome: Outcome) -> None:
        for index in self._accepted:
            self._settle(index, reply, outcome)
        self.abort(reply)    # anything still open (none in a well-formed run)

    def _settle(self, index: int, reply: str, outcome: Outcome) -> None:
        recipient = self.envelope.recipients[index]
        details = dict(self.details)
        if (outcome is Outcome.DELIVERED and not self.caps.has("DSN")
                and "SUCCESS" in (w.upper() for w in recipient.notify)):
            details["dsn_relayed"] = "true"   # RFC 3461 5.2.2: we owe the "relayed" DSN
        self._results[index] = RecipientResult(
            address=recipient.address, outcome=outcome, reply=reply,
            remote_host=self.remote or None, details=details)


def _outcome_of_text(reply: str) -> Outcome:
    return Outcome.FAILED if reply.startswith("5") else Outcome.DEFERRED


def with_details(results: list[RecipientResult], **details: str) -> list[RecipientResult]:
    """The same results with extra details (e.g. the TLS version used)."""
    return [replace(r, details={**r.details, **details}) for r in results]
