"""The MX handler: aiosmtpd `handle_*` hooks that ask the directory and policy, then deliver.

Hooks stay thin: each parses what the client sent, asks a pure policy function or the
directory what to do, and returns a catalogue reply. Delivery runs in a worker thread so the
fsyncs never block the event loop; the `250` is sent only after they finished.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from appliance.core import log
from appliance.core.addresses import AddressError, parse_address
from appliance.core.errors import MailError
from appliance.core.ids import new_queue_id
from appliance.smtp import policy, replies
from appliance.storage.interfaces import Directory, Mailbox, MailStore, Resolution

NULL_SENDER = "<>"   # RFC 5321 4.5.5: the reverse-path of bounces and auto-replies


class MxEnvelope(Envelope):
    """aiosmtpd's envelope plus what the MX learnt about each recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.resolutions: dict[str, Resolution] = {}


class MxHandler:
    """Policy hooks for the MX listener (local domains only, no relaying)."""

    def __init__(self, directory: Directory, store: MailStore, executor: Executor,
                 hostname: str, max_recipients: int) -> None:
        self._directory = directory
        self._store = store
        self._executor = executor
        self._hostname = hostname
        self._max_recipients = max_recipients

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1] if not r[4:].startswith("AUTH")]
        return [*kept, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if address in ("", NULL_SENDER):
            address = NULL_SENDER     # aiosmtpd tells "no MAIL yet" by a false mail_from
        else:
            try:
                address = str(parse_address(address))
            except AddressError:
                return replies.BAD_SENDER_SYNTAX
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
        mailboxes = _unique_mailboxes(envelope)
        message = self._trace(session, envelope, queue_id) + policy.to_maildir_lines(
            envelope.original_content)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._store.deliver, message, mailboxes)
        except MailError as exc:
            log.error("smtp.delivery_failed", queue_id=queue_id, reason=exc.reason)
            return exc.reply
        log.event("smtp.accepted", queue_id=queue_id, client=_client_ip(session),
                  sender=envelope.mail_from, recipients=envelope.rcpt_tos,
                  mailboxes=len(mailboxes), size=len(message))
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


def _unique_mailboxes(envelope: MxEnvelope) -> list[Mailbox]:
    """Every mailbox of every recipient, once (two aliases of one user deliver one copy)."""
    seen: dict[int, Mailbox] = {}
    for resolution in envelope.resolutions.values():
        for mailbox in resolution.mailboxes:
            seen.setdefault(mailbox.account_id, mailbox)
    return list(seen.values())


def _client_ip(session: Session) -> str:
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
