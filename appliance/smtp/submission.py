"""The submission handler (RFC 6409): aiosmtpd hooks for the 587 and 465 listeners.

Only logged-in accounts get here (the session requires AUTH before MAIL, and AUTH requires
TLS). Then: the envelope sender and every From/Sender address must belong to the account
(`553 5.7.1`), the account's sending rate is limited (`450 4.7.1`), local recipients are
checked as on the MX, remote ones are accepted (this is the only place mail is relayed),
missing `Date` and `Message-ID` are added, and the `Deliverer` stores local copies and
queues the rest before the `250`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from appliance.auth.guard import LoginGuard
from appliance.checks.context import MessageContext
from appliance.checks.pipeline import MessageCheck, log_checks, run_checks
from appliance.core import log
from appliance.core.addresses import Address, AddressError, parse_address
from appliance.core.errors import MailError
from appliance.core.ids import new_queue_id
from appliance.core.ratelimit import SlidingWindowLimiter
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import refused_destination
from appliance.pipeline.space import SpaceGuard
from appliance.smtp import policy, replies, submission_policy
from appliance.smtp.auth_mechanisms import SmtpAuthMechanisms, authenticated_account
from appliance.smtp.dsn_commands import envelope_dsn
from appliance.smtp.envelope import (
    EHLO_EXTENSIONS,
    NULL_SENDER,
    MxEnvelope,
    accepted_recipients,
    announced_size,
    client_ip,
)
from appliance.storage.interfaces import Directory, RecipientStatus

PROTOCOL = "ESMTPSA"    # RFC 3848: ESMTP, with TLS, authenticated (always so on submission)


class SenderDirectory(Directory, Protocol):
    """The directory as submission uses it: recipients, and who may send as an address."""

    def sender_owners(self, address: Address) -> frozenset[str]:
        """The accounts (`Address.key`) allowed to send as `address`."""
        ...


class SubmissionHandler(SmtpAuthMechanisms):
    """Policy hooks for authenticated submission."""

    def __init__(self, directory: SenderDirectory, deliverer: Deliverer, guard: LoginGuard,
                 limiter: SlidingWindowLimiter, *, hostname: str, max_recipients: int,
                 space: SpaceGuard | None = None, checks: Sequence[MessageCheck] = ()) -> None:
        super().__init__(guard)
        self._directory = directory
        self._checks = tuple(checks)
        self._deliverer = deliverer
        self._limiter = limiter
        self._hostname = hostname
        self._max_recipients = max_recipients
        self._space = space

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], *EHLO_EXTENSIONS, responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        account = authenticated_account(session)
        if account is None:
            return replies.AUTH_REQUIRED
        if address in ("", NULL_SENDER):
            address = NULL_SENDER     # MDNs (RFC 8098 3) are sent with a null reverse-path
        else:
            try:
                sender = parse_address(address)
            except AddressError:
                return replies.BAD_SENDER_SYNTAX
            if not self._owns(account, sender):
                _refused(session, account, "sender_not_owned", str(sender))
                return replies.SENDER_NOT_OWNED
            address = str(sender)
        if not self._limiter.allowed(account):
            _refused(session, account, "rate_limited", address)
            return replies.SENDING_RATE_EXCEEDED
        if self._space is not None and not self._space.has_room(announced_size(mail_options)):
            _refused(session, account, "disk_space", address)
            return replies.INSUFFICIENT_STORAGE
        assert isinstance(envelope, MxEnvelope)
        envelope.start(address, mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        assert isinstance(envelope, MxEnvelope)
        try:
            recipient = parse_address(address)
        except AddressError:
            if refused_destination(address.rpartition("@")[2], self._hostname):
                return self._reject(session, address, "refused_destination",
                                    replies.DESTINATION_REFUSED)
            return replies.BAD_RECIPIENT_SYNTAX
        early = envelope.recipient_precheck(recipient, self._max_recipients)
        if early is not None:
            return early
        resolution = self._directory.resolve(recipient)
        # A remote recipient is what submission is for: the session is authenticated.
        # But never this host itself or a bare IP address (route.refused_destination).
        if resolution.status is RecipientStatus.NOT_LOCAL:
            if refused_destination(recipient.domain, self._hostname):
                return self._reject(session, str(recipient), "refused_destination",
                                    replies.DESTINATION_REFUSED)
        else:
            rejection = policy.recipient_reply(resolution)
            if rejection is not None:
                return self._reject(session, str(recipient), resolution.status.value,
                                    rejection)
            full = await self._deliverer.quota_deferral(
                resolution, announced_size(envelope.mail_options))
            if full is not None:     # this recipient alone (4.2.2): the others go on
                return self._reject(session, str(recipient), "over_quota", full)
        return envelope.add_recipient(recipient, resolution, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, MxEnvelope)
        assert envelope.original_content is not None
        account = authenticated_account(session)
        if account is None:
            return replies.AUTH_REQUIRED
        content = envelope.original_content
        refusal = self._check_authors(session, account, content)
        if refusal is not None:
            return refusal
        if not self._limiter.acquire(account):
            _refused(session, account, "rate_limited", envelope.mail_from or "")
            return replies.SENDING_RATE_EXCEEDED
        queue_id = new_queue_id()
        context = MessageContext(queue_id=queue_id, client_ip=client_ip(session),
                                 helo=session.host_name or "",
                                 mail_from=envelope.mail_from or "",
                                 recipients=tuple(envelope.rcpt_tos),
                                 tls=session.ssl is not None, authenticated_as=account)
        decision = await run_checks(self._checks, content, context)   # infected mail too
        log_checks("submission", decision, queue_id, client_ip(session))
        if decision.refused:
            return decision.reply
        message = self._complete(envelope, decision.header_bytes() + content, queue_id,
                                 time.time())
        return await self._deliver(session, envelope, account, message, queue_id)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):     # the client's handshake failed
            log.event("submission.tls_failed", reason=str(error.__cause__ or error))
        else:
            log.error("submission.internal_error", error)
        return replies.TEMPORARY_FAILURE

    def _reject(self, session: Session, recipient: str, reason: str, reply: str) -> str:
        log.event("submission.recipient_rejected", client=client_ip(session),
                  account=authenticated_account(session), recipient=recipient,
                  reason=reason, reply=reply[:3])
        return reply

    def _owns(self, account: str, address: Address) -> bool:
        return account in self._directory.sender_owners(address)

    def _check_authors(self, session: Session, account: str, content: bytes) -> str | None:
        """The refusal for a message whose From/Sender fields are not the account's own."""
        header, _ = submission_policy.split_header(content)
        authors = submission_policy.authors(header)
        if authors.problem is not None:
            _refused(session, account, f"from_header_{authors.problem.value}", "")
            return replies.FROM_HEADER_INVALID
        for author in authors.addresses:
            if not self._owns(account, author):
                _refused(session, account, "from_not_owned", str(author))
                return replies.FROM_NOT_OWNED
        return None

    def _complete(self, envelope: MxEnvelope, content: bytes, queue_id: str,
                  now: float) -> bytes:
        """Add `Date` and `Message-ID` if missing (RFC 6409 8.1, 8.2), and the trace fields.

        `Return-Path` belongs to final delivery (RFC 5321 4.4): it is added only when every
        recipient is local, because the same bytes are queued for any remote recipient.
        """
        header, _ = submission_policy.split_header(content)
        added = b""
        for name in submission_policy.missing_fields(header):
            added += (submission_policy.date_field(now) if name == "Date" else
                      submission_policy.message_id_field(
                          f"{queue_id}.{secrets.token_hex(6)}", self._hostname))
        trace = submission_policy.received_field(self._hostname, PROTOCOL, queue_id, now)
        if all(r.status is not RecipientStatus.NOT_LOCAL and not r.remote
               for r in envelope.resolutions.values()):
            sender = "" if envelope.mail_from == NULL_SENDER else envelope.mail_from or ""
            trace = f"Return-Path: <{sender}>\r\n".encode() + trace
        return trace + submission_policy.with_fields(content, added)

    async def _deliver(self, session: Session, envelope: MxEnvelope, account: str,
                       message: bytes, queue_id: str) -> str:
        dsn = envelope_dsn(envelope)
        try:
            await self._deliverer.accept(
                message, envelope.mail_from or "", accepted_recipients(envelope), queue_id=queue_id,
                envid=dsn.mail.envid, ret=dsn.mail.ret, smtputf8=envelope.smtp_utf8,
                body_8bit="BODY=8BITMIME" in envelope.mail_options)
        except MailError as exc:
            log.error("submission.delivery_failed", queue_id=queue_id, reason=exc.reason)
            return exc.reply
        log.event("submission.accepted", queue_id=queue_id, account=account,
                  client=client_ip(session), helo=session.host_name,
                  sender=envelope.mail_from, recipients=envelope.rcpt_tos, size=len(message))
        return replies.QUEUED.format(queue_id=queue_id)


def _refused(session: Session, account: str, reason: str, address: str) -> None:
    log.event("submission.refused", client=client_ip(session), account=account,
              reason=reason, address=address)
