"""MAIL and RCPT with RFC 3461 DSN parameters, on top of aiosmtpd's commands.

aiosmtpd has no hook for ESMTP parameters it does not know (it answers 555 and upper-cases
the rest), so this layer takes RET/ENVID/NOTIFY/ORCPT out of the argument, validates them
with the pure `dsn_params`, lets aiosmtpd and the handler run the command, and, if the
command was accepted, records the parameters on the envelope (`envelope_dsn`).
"""

from __future__ import annotations

import collections
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, syntax

from appliance.smtp import dsn_params
from appliance.smtp.dsn_params import DsnError, EnvelopeDsn

_ATTRIBUTE = "mailstead_dsn"


def envelope_dsn(envelope: Envelope) -> EnvelopeDsn:
    """The DSN parameters recorded on `envelope` (empty ones if none were given)."""
    found = getattr(envelope, _ATTRIBUTE, None)
    if not isinstance(found, EnvelopeDsn):
        found = EnvelopeDsn()
        setattr(envelope, _ATTRIBUTE, found)
    return found


class DsnCommands(SMTP):
    """aiosmtpd's SMTP with DSN parameters on MAIL and RCPT (advertise `DSN` in EHLO)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # aiosmtpd keeps these limits in one dict shared by every connection (and grows it
        # at each EHLO); a per-connection dict, with the room RFC 3461 5 adds for DSN.
        base = SMTP.command_size_limit
        self.command_size_limits = collections.defaultdict(lambda: base, {
            "MAIL": base + dsn_params.MAIL_EXTRA_LENGTH,
            "RCPT": base + dsn_params.RCPT_EXTRA_LENGTH})

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg is None or self.session is None or not self.session.extended_smtp:
            await super().smtp_MAIL(arg)
            return
        try:
            rest, params = dsn_params.split_params(arg, dsn_params.MAIL_KEYWORDS)
            parsed = dsn_params.parse_mail(params)
        except DsnError as exc:
            await self.push(exc.reply)
            return
        had_sender = self.envelope is not None and bool(self.envelope.mail_from)
        await super().smtp_MAIL(rest)
        if self.envelope is not None and self.envelope.mail_from and not had_sender:
            envelope_dsn(self.envelope).mail = parsed

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is None or self.session is None or not self.session.extended_smtp:
            await super().smtp_RCPT(arg)
            return
        try:
            rest, params = dsn_params.split_params(arg, dsn_params.RCPT_KEYWORDS)
            parsed = dsn_params.parse_rcpt(params)
        except DsnError as exc:
            await self.push(exc.reply)
            return
        before = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        await super().smtp_RCPT(rest)
        if self.envelope is not None and len(self.envelope.rcpt_tos) > before:
            envelope_dsn(self.envelope).recipients[self.envelope.rcpt_tos[-1]] = parsed
