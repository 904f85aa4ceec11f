"""Pure SMTP policy for the MX: recipient decisions and the trace headers we prepend.

No sockets, no disk: the handler asks these functions what to answer and what to write.
"""

from __future__ import annotations

import email.utils
import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.smtp import replies
from appliance.storage.interfaces import RecipientStatus, Resolution

_MAX_HELO_IN_HEADER = 255


def recipient_reply(resolution: Resolution) -> str | None:
    """The rejection for a resolved recipient, or None if it is accepted."""
    if resolution.status is RecipientStatus.NOT_LOCAL:
        return replies.RELAY_DENIED
    if resolution.status is RecipientStatus.UNKNOWN:
        return replies.UNKNOWN_USER
    if resolution.status is RecipientStatus.DISABLED:
        return replies.MAILBOX_DISABLED
    return None     # local mailboxes and alias targets elsewhere (queued for forwarding)


@dataclass(frozen=True)
class Trace:
    """What RFC 5321 section 4.4 asks a receiving server to record."""

    sender: str             # envelope sender, "" for the null reverse-path
    helo: str
    client_ip: str
    hostname: str
    protocol: str           # "SMTP", "ESMTP", "ESMTPS" (RFC 3848)
    queue_id: str
    recipient: str | None   # only when the message has exactly one recipient
    timestamp: float


def trace_headers(trace: Trace) -> bytes:
    """`Return-Path` and `Received` header lines, LF-terminated, to put above the message."""
    helo = _header_token(trace.helo)[:_MAX_HELO_IN_HEADER] or "unknown"
    for_clause = f"\n\tfor <{trace.recipient}>" if trace.recipient else ""
    literal = f"IPv6:{trace.client_ip}" if ":" in trace.client_ip else trace.client_ip
    date = _date(int(trace.timestamp))
    received = (f"Received: from {helo} ([{literal}])\n"
                f"\tby {trace.hostname} (Mailstead) with {trace.protocol} id {trace.queue_id}"
                f"{for_clause};\n\t{date}\n")
    return f"Return-Path: <{trace.sender}>\n{received}".encode()


@functools.lru_cache(maxsize=4)     # many messages arrive within the same second
def _date(epoch: int) -> str:
    """An RFC 5322 date-time (whole seconds, as the header shows them) in UTC."""
    return email.utils.format_datetime(datetime.fromtimestamp(epoch, UTC))


def _header_token(text: str) -> str:
    """Client text made safe for one header token: only visible characters survive.

    Not just CR and LF: C1 controls (NEL), U+2028/U+2029 and other Unicode spaces end lines
    or split tokens for some mail software, so anything not printable or blank becomes "?".
    """
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in text)


def to_maildir_lines(content: bytes) -> bytes:
    """Maildir files use LF line ends: turn the SMTP CRLF line ends into LF."""
    return content.replace(b"\r\n", b"\n")
