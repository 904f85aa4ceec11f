"""The MX handler: aiosmtpd `handle_*` hooks that ask the directory and policy, then deliver.

Hooks stay thin: each parses what the client sent, asks a pure policy function or the
directory what to do, and returns a catalogue reply. Delivery runs in a worker thread so the
fsyncs never block the event loop; the `250` is sent only after they finished.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from appliance.core import log
from appliance.core.addresses import AddressError, parse_address
from appliance.core.errors import MailError
from appliance.core.ids import new_queue_id
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.pipeline.space import SpaceGuard
from appliance.smtp import policy, replies
from appliance.smtp.dsn_commands import envelope_dsn
from appliance.storage.interfaces import Directory, Resolution

NULL_SENDER = "<>"   # RFC 5321 4.5.5: the reverse-path of bounces and auto-replies


class MxEnvelope(Envelope):
    """aiosmtpd's envelope plus what the MX learnt about each recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.resolutions: dict[str, Resolution] = {}


class MxHandler:
    """Policy hooks for the MX listener (local domains only, no relaying)."""

    def __init__(self, directory: Directory, deliverer: Deliverer, executor: Executor,
                 hostname: str, max_recipients: int, space: SpaceGuard | None = None) -> None:
        self._directory = directory
        self._deliverer = deliverer
        self._executor = executor
        self._hostname = hostname
        self._max_recipients = max_recipients
        self._space = space

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1] if not r[4:].startswith("AUTH")]
        return [*kept, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-DSN", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if address in ("", NULL_SENDER):
            address = NULL_SENDER     # aiosmtpd tells "no MAIL yet" by a false mail_from
        else:
            try:
                address = str(parse_address(address))
            except AddressError:
                return replies.BAD_SENDER_SYNTAX
        if self._space is not None and not self._space.has_room(_announced_size(mail_options)):
            log.event("smtp.sender_deferred", client=_client_ip(session), reason="disk_space")
            return replies.INSUFFICIENT_STORAGE
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        assert isinstance(envelope, MxEnvelope)
        try:
            recipient = parse_address(address)
        except AddressError:
            return replies.BAD_RECIPIENT_SYNTAX
        if recipient.key in envelope.resolutions:
            return replies.RECIPIENT_OK            # a duplicate: accepted once
        if len(envelope.resolutions) >= self._max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        resolution = self._directory.resolve(recipient)
        rejection = policy.recipient_reply(resolution)
        if rejection is not None:
            log.event("smtp.recipient_rejected", client=_client_ip(session),
                      recipient=str(recipient), reason=resolution.status.value,
                      reply=rejection[:3])
            return rejection
        envelope.resolutions[recipient.key] = resolution
        envelope.rcpt_tos.append(str(recipient))
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, MxEnvelope)
        assert envelope.original_content is not None
        queue_id = new_queue_id()
        trace = self._trace(session, envelope, queue_id).replace(b"\n", b"\r\n")
        message = trace + envelope.original_content
        dsn = envelope_dsn(envelope)
        try:
            await self._deliverer.accept(
                message, envelope.mail_from or "", _accepted(envelope), queue_id=queue_id,
                envid=dsn.mail.envid, ret=dsn.mail.ret, smtputf8=envelope.smtp_utf8,
                body_8bit="BODY=8BITMIME" in envelope.mail_options)
        except MailError as exc:
            log.error("smtp.delivery_failed", queue_id=queue_id, reason=exc.reason)
            return exc.reply
        log.event("smtp.accepted", queue_id=queue_id, client=_client_ip(session),
                  sender=envelope.mail_from, recipients=envelope.rcpt_tos, size=len(message))
        return replies.QUEUED.format(queue_id=queue_id)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):     # the client's handshake failed
            log.event("smtp.tls_failed", reason=str(error.__cause__ or error))
        else:
            log.error("smtp.internal_error", error)
        return replies.TEMPORARY_FAILURE

    def _trace(self, session: Session, envelope: MxEnvelope, queue_id: str) -> bytes:
        protocol = ("ESMTP" if session.extended_smtp else "SMTP") + (
            "S" if session.ssl is not None else "")
        only = envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None
        return policy.trace_headers(policy.Trace(
            sender="" if envelope.mail_from == NULL_SENDER else envelope.mail_from or "",
            helo=session.host_name or "",
            client_ip=_client_ip(session), hostname=self._hostname, protocol=protocol,
            queue_id=queue_id, recipient=only, timestamp=time.time()))


def _accepted(envelope: MxEnvelope) -> list[Accepted]:
    """The accepted recipients with their resolutions and DSN parameters (RFC 3461)."""
    dsn = envelope_dsn(envelope)
    found: list[Accepted] = []
    for address, resolution in zip(envelope.rcpt_tos, envelope.resolutions.values(),
                                   strict=True):
        params = dsn.recipients.get(address)
        found.append(Accepted(address, resolution, params.notify if params else (),
                              params.orcpt if params else None))
    return found


def _announced_size(mail_options: list[str]) -> int:
    """The SIZE the client announced on MAIL FROM (RFC 1870), 0 if none."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def _client_ip(session: Session) -> str:
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
