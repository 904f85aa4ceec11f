"""Delivery status notifications (pure): RFC 3464 `multipart/report` messages.

One report covers the recipients of one message that reached the same Action (failed,
delayed, delivered, relayed). It has a human-readable part, the machine-readable
`message/delivery-status`, and the original: its headers (`text/rfc822-headers`) or, for a
failure report with RET=FULL, the whole message (`message/rfc822`) when it is not larger
than the size limit. Reports go to the envelope sender with the null reverse-path; none is
made for the null sender or for a message that is itself a report (no loops, RFC 3461 6.2).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from appliance.outbound.scheduler import Notice

_ENHANCED = re.compile(r"(?:\d{3}[ -])?([245]\.\d{1,3}\.\d{1,3})\b")
_REPLY_CODE = re.compile(r"([245])\d\d\b")
_MAX_FIELD = 900

SUBJECTS = {
    Notice.FAILED: "Undelivered Mail Returned to Sender",
    Notice.DELAYED: "Delayed Mail (still being retried)",
    Notice.DELIVERED: "Successful Mail Delivery Report",
    Notice.RELAYED: "Successful Mail Delivery Report",
}
INTROS = {
    Notice.FAILED: "Your message could not be delivered to one or more recipients. "
                   "It has been given up; the reasons are below.",
    Notice.DELAYED: "Your message has not been delivered yet to the recipients below. "
                    "The mail system will keep trying; no action is needed for now.",
    Notice.DELIVERED: "Your message was delivered to the mailboxes of the recipients below.",
    Notice.RELAYED: "Your message was handed on to the recipients' mail servers below, "
                    "which will not send delivery reports themselves.",
}


@dataclass(frozen=True)
class ReportedRecipient:
    """One recipient in a report."""

    address: str
    orcpt: str | None                 # decoded "addr-type;address", from RCPT ORCPT
    reply: str                        # "550 5.1.1 No such user", "4.4.7 ...", "250 ..."
    remote_host: str | None = None
    last_attempt: float | None = None
    will_retry_until: float | None = None


@dataclass(frozen=True)
class ReportContext:
    """What a report says about the message as a whole."""

    hostname: str                     # our name: Reporting-MTA, MAILER-DAEMON@hostname
    queue_id: str
    sender: str                       # the original envelope sender: the report's recipient
    envid: str | None
    ret: str | None
    arrival: float
    now: float
    full_limit: int                   # largest original returned whole (RET=FULL)


def is_report(message: bytes) -> bool:
    """True if `message` is itself a delivery report (never answer one with another)."""
    headers = header_block(message).decode("ascii", "replace").lower()
    unfolded = re.sub(r"\r?\n[ \t]+", " ", headers)
    content_type = re.search(r"^content-type:[^\n]*", unfolded, re.MULTILINE)
    return bool(content_type and "multipart/report" in content_type.group(0)
                and "delivery-status" in content_type.group(0))


def should_report(ctx: ReportContext, original: bytes) -> bool:
    """No report to the null sender (RFC 5321 6.1) and none about a report."""
    return ctx.sender != "" and not is_report(original)


def header_block(message: bytes) -> bytes:
    """The header section of `message`, with its line ends, without the empty line."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = message.find(separator)
        if end >= 0:
            return message[:end + len(separator) // 2]
    return b"" if message.startswith((b"\r\n", b"\n")) else message


def build_report(ctx: ReportContext, action: Notice, recipients: Sequence[ReportedRecipient],
                 original: bytes, token: str | None = None) -> bytes:
    """The whole report message, CRLF line ends, ready to queue from the null sender.

    Args:
        token: randomness for the Message-ID and MIME boundary (tests pass a fixed one).
    """
    token = token or secrets.token_hex(8)
    boundary = _boundary(ctx, token, original)
    parts = [_human_part(ctx, action, recipients, len(original)),
             _status_part(ctx, action, recipients),
             _original_part(ctx, action, original)]
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return _top_headers(ctx, action, boundary, token) + b"\r\n" + (
        b"This is a MIME-encapsulated message.\r\n\r\n" + body
        + b"--" + boundary.encode() + b"--\r\n")


def _boundary(ctx: ReportContext, token: str, original: bytes) -> str:
    boundary = f"{ctx.queue_id}.{token}/{ctx.hostname}"
    while boundary.encode() in original:
        boundary += ".x"
    return boundary


def _top_headers(ctx: ReportContext, action: Notice, boundary: str, token: str) -> bytes:
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{ctx.hostname}>",
        f"To: <{ctx.sender}>",
        f"Subject: {SUBJECTS[action]}",
        f"Date: {_date(ctx.now)}",
        f"Message-ID: <{ctx.queue_id}.{token}.dsn@{ctx.hostname}>",
        "Auto-Submitted: auto-replied",            # RFC 3834 5: reports are auto-replies
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def _human_part(ctx: ReportContext, action: Notice, recipients: Sequence[ReportedRecipient],
                size: int) -> bytes:
    lines = [f"This is the mail system at host {ctx.hostname}.", "", INTROS[action], ""]
    for recipient in recipients:
        lines.append(f"<{recipient.address}>: {_ascii(recipient.reply)}")
        if recipient.remote_host:
            lines.append(f"    (reported by {recipient.remote_host})")
    if action is Notice.FAILED and _wants_full(ctx) and size > ctx.full_limit:
        lines += ["", f"The message ({size} bytes) is larger than {ctx.full_limit} bytes; "
                      "only its headers are returned."]
    text = "".join(line + "\r\n" for line in lines)
    return (b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Description: Notification\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + text.encode("utf-8"))


def _status_part(ctx: ReportContext, action: Notice,
                 recipients: Sequence[ReportedRecipient]) -> bytes:
    blocks = [_per_message(ctx)] + [_per_recipient(r, action) for r in recipients]
    data = "\r\n".join("".join(f"{field}\r\n" for field in block)
                       for block in blocks).encode("utf-8")
    # RFC 6533 6.2: UTF-8 addresses (utf-8 address type) need the global type, 8-bit.
    kind, encoding = ((b"message/delivery-status", b"") if data.isascii() else
                      (b"message/global-delivery-status",
                       b"Content-Transfer-Encoding: 8bit\r\n"))
    return (b"Content-Type: " + kind + b"\r\nContent-Description: Delivery report\r\n"
            + encoding + b"\r\n" + data)


def _per_message(ctx: ReportContext) -> list[str]:
    fields = [f"Reporting-MTA: dns; {ctx.hostname}", f"X-Mailstead-Queue-ID: {ctx.queue_id}"]
    if ctx.envid:
        fields.append(f"Original-Envelope-Id: {_ascii(ctx.envid)}")
    fields.append(f"Arrival-Date: {_date(ctx.arrival)}")
    return fields


def _per_recipient(recipient: ReportedRecipient, action: Notice) -> list[str]:
    fields: list[str] = []
    if recipient.orcpt:
        fields.append(f"Original-Recipient: {_address_field(recipient.orcpt)}")
    kind = "rfc822" if recipient.address.isascii() else "utf-8"
    fields += [f"Final-Recipient: {kind}; {recipient.address}", f"Action: {action.value}",
               f"Status: {status_code(recipient.reply, action)}"]
    if recipient.remote_host:
        fields.append(f"Remote-MTA: dns; {_ascii(mta_name(recipient.remote_host))}")
    if _REPLY_CODE.match(recipient.reply):
        fields.append(f"Diagnostic-Code: smtp; {_ascii(recipient.reply)}")
    if recipient.last_attempt is not None:
        fields.append(f"Last-Attempt-Date: {_date(recipient.last_attempt)}")
    if action is Notice.DELAYED and recipient.will_retry_until is not None:
        fields.append(f"Will-Retry-Until: {_date(recipient.will_retry_until)}")
    return fields


def mta_name(remote_host: str) -> str:
    """The host name of `name[address]`: an mta-name of type `dns` is a domain name alone
    (RFC 3464 2.3.5, 2.1.2); the address stays in the human-readable part."""
    name = remote_host.partition("[")[0]
    return name or remote_host


def status_code(reply: str, action: Notice) -> str:
    """The RFC 3463 status for a recipient: the reply's own, else one from its class."""
    found = _ENHANCED.match(reply)
    if found:
        return found.group(1)
    code = _REPLY_CODE.match(reply)
    if code:
        return f"{code.group(1)}.0.0"
    return {Notice.FAILED: "5.0.0", Notice.DELAYED: "4.0.0"}.get(action, "2.0.0")


def _original_part(ctx: ReportContext, action: Notice, original: bytes) -> bytes:
    full = action is Notice.FAILED and _wants_full(ctx) and len(original) <= ctx.full_limit
    content = original if full else header_block(original)
    # RFC 6533 6.3, 6.4: a message whose header is UTF-8 (SMTPUTF8) is returned as
    # message/global (whole) or message/global-headers (headers only).
    utf8_header = not header_block(original).isascii()
    kind = {(True, False): "message/rfc822", (False, False): "text/rfc822-headers",
            (True, True): "message/global", (False, True): "message/global-headers"}[
                (full, utf8_header)]
    description = "Undelivered Message" if full else "Message Headers"
    encoding = b"" if content.isascii() else b"Content-Transfer-Encoding: 8bit\r\n"
    if not content.endswith(b"\n"):
        content += b"\r\n"
    return (f"Content-Type: {kind}\r\nContent-Description: {description}\r\n".encode()
            + encoding + b"\r\n" + content)


def _wants_full(ctx: ReportContext) -> bool:
    return ctx.ret == "FULL"


def _address_field(orcpt: str) -> str:
    addr_type, _, address = orcpt.partition(";")
    return f"{addr_type}; {address}"


def _ascii(text: str) -> str:
    """One header-safe line: printable ASCII only, bounded length."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean[:_MAX_FIELD]


def _date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC))
