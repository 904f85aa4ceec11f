"""The MX handler: aiosmtpd `handle_*` hooks that ask the directory and policy, then deliver.

Hooks stay thin: each parses what the client sent, asks a pure policy function or the
directory what to do, and returns a catalogue reply. Delivery runs in a worker thread so the
fsyncs never block the event loop; the `250` is sent only after they finished.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from appliance.checks.auth_results import remove_forged
from appliance.checks.context import MessageContext
from appliance.checks.pipeline import MessageCheck, log_checks, run_checks
from appliance.checks.ratelimit_clients import ClientRateLimits
from appliance.checks.result import Verdict
from appliance.core import log
from appliance.core.addresses import AddressError, parse_address
from appliance.core.errors import MailError
from appliance.core.ids import new_queue_id
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.pipeline.space import SpaceGuard
from appliance.smtp import policy, replies
from appliance.smtp.dsn_commands import envelope_dsn
from appliance.smtp.envelope import (
    EHLO_EXTENSIONS,
    NULL_SENDER,
    MxEnvelope,
    accepted_recipients,
    announced_size,
    client_ip,
)
from appliance.storage.interfaces import Directory


class MxHandler:
    """Policy hooks for the MX listener (local domains only, no relaying)."""

    def __init__(self, directory: Directory, deliverer: Deliverer, hostname: str,
                 max_recipients: int, space: SpaceGuard | None = None,
                 checks: Sequence[MessageCheck] = (),
                 rates: ClientRateLimits | None = None) -> None:
        self._directory = directory
        self._rates = rates       # messages per minute per client (MAIL FROM)
        self._checks = tuple(checks)
        self._deliverer = deliverer
        self._hostname = hostname
        self._max_recipients = max_recipients
        self._space = space

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1] if not r[4:].startswith("AUTH")]
        return [*kept, *EHLO_EXTENSIONS, responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if address in ("", NULL_SENDER):
            address = NULL_SENDER     # aiosmtpd tells "no MAIL yet" by a false mail_from
        else:
            try:
                address = str(parse_address(address))
            except AddressError:
                return replies.BAD_SENDER_SYNTAX
        if self._space is not None and not self._space.has_room(announced_size(mail_options)):
            log.event("smtp.sender_deferred", client=client_ip(session), reason="disk_space")
            return replies.INSUFFICIENT_STORAGE
        if self._rates is not None:
            over = self._rates.admit_message(client_ip(session))
            if over is not None:
                return over
        assert isinstance(envelope, MxEnvelope)
        envelope.start(address, mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        assert isinstance(envelope, MxEnvelope)
        try:
            recipient = parse_address(address)
        except AddressError:
            return replies.BAD_RECIPIENT_SYNTAX
        early = envelope.recipient_precheck(recipient, self._max_recipients)
        if early is not None:
            return early
        resolution = self._directory.resolve(recipient)
        rejection = policy.recipient_reply(resolution)
        if rejection is not None:
            log.event("smtp.recipient_rejected", client=client_ip(session),
                      recipient=str(recipient), reason=resolution.status.value,
                      reply=rejection[:3])
            return rejection
        full = await self._deliverer.quota_deferral(resolution,
                                                    announced_size(envelope.mail_options))
        if full is not None:     # this recipient alone; the sender retries it (4.2.2)
            log.event("smtp.recipient_deferred", client=client_ip(session),
                      recipient=str(recipient), reason="over_quota", reply=full[:3])
            return full
        return envelope.add_recipient(recipient, resolution, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, MxEnvelope)
        assert envelope.original_content is not None
        queue_id = new_queue_id()
        recipients = accepted_recipients(envelope)
        context = self._context(session, envelope, queue_id, recipients)
        content, forged = remove_forged(envelope.original_content, self._hostname)
        if forged:     # our authserv-id (RFC 8601 5) or our X-Spam-* fields, from outside
            log.event("smtp.forged_fields_removed", queue_id=queue_id, count=forged)
        decision = await run_checks(self._checks, content, context)
        log_checks("smtp", decision, queue_id, client_ip(session))
        if decision.refused:      # the client sees the generic reply, the log the reason
            return decision.reply
        trace = self._trace(session, envelope, queue_id).replace(b"\n", b"\r\n")
        message = trace + decision.header_bytes(self._hostname) + content
        dsn = envelope_dsn(envelope)
        junk = decision.verdict == Verdict.JUNK
        try:
            await self._deliverer.accept(
                message, envelope.mail_from or "", recipients, queue_id=queue_id,
                envid=dsn.mail.envid, ret=dsn.mail.ret, smtputf8=envelope.smtp_utf8,
                body_8bit="BODY=8BITMIME" in envelope.mail_options,
                folder="Junk" if junk else "")
        except MailError as exc:
            log.error("smtp.delivery_failed", queue_id=queue_id, reason=exc.reason)
            return exc.reply
        log.event("smtp.accepted", queue_id=queue_id, client=client_ip(session),
                  folder="Junk" if junk else "INBOX",
                  sender=envelope.mail_from, recipients=envelope.rcpt_tos, size=len(message))
        return replies.QUEUED.format(queue_id=queue_id)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):     # the client's handshake failed
            log.event("smtp.tls_failed", reason=str(error.__cause__ or error))
        else:
            log.error("smtp.internal_error", error)
        return replies.TEMPORARY_FAILURE

    @staticmethod
    def _context(session: Session, envelope: MxEnvelope, queue_id: str,
                 recipients: Sequence[Accepted]) -> MessageContext:
        mailboxes = dict.fromkeys(m.address for r in recipients
                                  for m in r.resolution.mailboxes)
        return MessageContext(
            queue_id=queue_id, client_ip=client_ip(session), helo=session.host_name or "",
            mail_from="" if envelope.mail_from == NULL_SENDER else envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos), mailboxes=tuple(mailboxes),
            tls=session.ssl is not None)

    def _trace(self, session: Session, envelope: MxEnvelope, queue_id: str) -> bytes:
        protocol = ("ESMTP" if session.extended_smtp else "SMTP") + (
            "S" if session.ssl is not None else "")
        only = envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None
        return policy.trace_headers(policy.Trace(
            sender="" if envelope.mail_from == NULL_SENDER else envelope.mail_from or "",
            helo=session.host_name or "",
            client_ip=client_ip(session), hostname=self._hostname, protocol=protocol,
            queue_id=queue_id, recipient=only, timestamp=time.time()))

