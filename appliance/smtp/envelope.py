"""What an SMTP transaction has gathered: the envelope type and facts read from it.

Shared by the MX and submission handlers (and the AUTH mechanisms), so each reads a session
and an envelope the same way.
"""

from __future__ import annotations

from typing import Any

from aiosmtpd.smtp import Envelope, Session

from appliance.core.addresses import Address
from appliance.pipeline.route import Accepted
from appliance.smtp import replies
from appliance.smtp.dsn_commands import envelope_dsn
from appliance.storage.interfaces import Resolution

NULL_SENDER = "<>"   # RFC 5321 4.5.5: the reverse-path of bounces and auto-replies


class MxEnvelope(Envelope):
    """aiosmtpd's envelope plus what the MX learnt about each recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.resolutions: dict[str, Resolution] = {}

    def start(self, sender: str, mail_options: list[str]) -> None:
        """Record an accepted MAIL FROM."""
        self.mail_from = sender
        self.mail_options.extend(mail_options)

    def recipient_precheck(self, recipient: Address, max_recipients: int) -> str | None:
        """The reply for a repeated recipient (accepted once) or one over the limit, else None."""
        if recipient.key in self.resolutions:
            return replies.RECIPIENT_OK
        if len(self.resolutions) >= max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        return None

    def add_recipient(self, recipient: Address, resolution: Resolution,
                      rcpt_options: list[str]) -> str:
        """Record an accepted RCPT TO and return its reply."""
        self.resolutions[recipient.key] = resolution
        self.rcpt_tos.append(str(recipient))
        self.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK


# Extensions every listener adds to aiosmtpd's EHLO lines (before its final "250 HELP").
EHLO_EXTENSIONS = ("250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-DSN")


def accepted_recipients(envelope: MxEnvelope) -> list[Accepted]:
    """The accepted recipients with their resolutions and DSN parameters (RFC 3461)."""
    dsn = envelope_dsn(envelope)
    found: list[Accepted] = []
    for address, resolution in zip(envelope.rcpt_tos, envelope.resolutions.values(),
                                   strict=True):
        params = dsn.recipients.get(address)
        found.append(Accepted(address, resolution, params.notify if params else (),
                              params.orcpt if params else None))
    return found


def announced_size(mail_options: list[str]) -> int:
    """The SIZE the client announced on MAIL FROM (RFC 1870), 0 if none."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def client_ip(session: Session) -> str:
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
