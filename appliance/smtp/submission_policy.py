"""Pure policy for submitted messages: who the From header names, and the fields we add.

RFC 6409 makes the submission server responsible for what its users send: section 8 lets
it add `Date` and `Message-ID` when missing; sender checks are our own policy (the envelope
sender and every From and Sender address must belong to the logged-in account). Headers are
read with the stdlib `email` parser, and anything it can only read with a defect is refused:
a lenient parse that differs from what the recipient's mail program shows is exactly how a
forged From slips through (`bob@evil <alice@ours>` parses as bob@evil).
"""

from __future__ import annotations

import email.utils
import enum
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email import errors, policy
from email.headerregistry import AddressHeader, BaseHeader
from email.message import EmailMessage
from email.parser import HeaderParser

from appliance.core.addresses import Address, AddressError, parse_address

# RFC 5322 2.2: field-name = 1*ftext, then ":"; an end of the header section is an empty line.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(r"^([^:\s][^:\r\n]*):", re.MULTILINE)
_AUTHOR_FIELDS = ("from", "sender")
_TOLERATED_DEFECTS = (errors.NonASCIILocalPartDefect,)   # RFC 6532 addresses are fine
# Defects about the body's MIME structure, which a header section alone cannot satisfy:
# Python 3.11.2 (Debian 12) reports MultipartInvariantViolationDefect for the header of
# every multipart message parsed without its body; later 3.11 releases do not.
_BODY_DEFECTS = (errors.MultipartInvariantViolationDefect, errors.StartBoundaryNotFoundDefect,
                 errors.CloseBoundaryNotFoundDefect, errors.NoBoundaryInMultipartDefect)


class HeaderProblem(enum.Enum):
    """Why the author fields cannot be checked."""

    MISSING_FROM = "missing_from"        # RFC 5322 3.6: exactly one From field
    MULTIPLE_FIELDS = "multiple_fields"  # two From (or two Sender) fields
    GROUP = "group"                      # group syntax: no mailbox to check (RFC 6854)
    MALFORMED = "malformed"              # a parse defect, or an invalid address


@dataclass(frozen=True)
class Authors:
    """The mailboxes of the From and Sender fields, or the problem that stopped us."""

    addresses: tuple[Address, ...] = ()
    problem: HeaderProblem | None = None


def split_header(content: bytes) -> tuple[bytes, bytes]:
    """Split a message into its header section (with its last line end) and the rest
    (starting with the empty line); a message without an empty line is all header."""
    if content.startswith((b"\r\n", b"\n")):
        return b"", content
    match = _HEADER_END.search(content)
    if match is None:
        return content, b""
    cut = match.start() + (2 if content[match.start()] == ord("\r") else 1)
    return content[:cut], content[cut:]


def parse_header(header: bytes) -> EmailMessage:
    """The header section as a message object (RFC 6532: header text is UTF-8)."""
    text = header.decode("utf-8", errors="surrogateescape")
    message = HeaderParser(policy=policy.default).parsestr(text + "\n")
    assert isinstance(message, EmailMessage)
    return message


def authors(header: bytes) -> Authors:
    """Every address of the From field and of the Sender field, if there is one."""
    names = _FIELD_NAME.findall(header.decode("utf-8", errors="surrogateescape"))
    if any(n != n.rstrip() and n.rstrip().casefold() in _AUTHOR_FIELDS for n in names):
        return Authors(problem=HeaderProblem.MALFORMED)   # "From :": obsolete, read unevenly
    message = parse_header(header)
    header_defects = [d for d in message.defects if not isinstance(d, _BODY_DEFECTS)]
    if header_defects or message.get_unixfrom():
        return Authors(problem=HeaderProblem.MALFORMED)
    fields = sorted(((name.casefold(), raw) for name, raw in message.raw_items()
                     if name.casefold() in _AUTHOR_FIELDS), key=lambda f: f[0] != "from")
    counts = Counter(name for name, _ in fields)
    if not counts["from"]:
        return Authors(problem=HeaderProblem.MISSING_FROM)
    if max(counts.values()) > 1:
        return Authors(problem=HeaderProblem.MULTIPLE_FIELDS)
    found: list[Address] = []
    for name, raw in fields:
        problem = _mailboxes(name, raw, found)
        if problem is not None:
            return Authors(problem=problem)
    return Authors(tuple(found))


def _mailboxes(name: str, raw: str, found: list[Address]) -> HeaderProblem | None:
    """Append the addresses of one From/Sender field to `found`, or say what is wrong."""
    try:
        value = policy.default.header_fetch_parse(name, raw)
        if not isinstance(value, AddressHeader) or not isinstance(value, BaseHeader):
            return HeaderProblem.MALFORMED
        if any(not isinstance(d, _TOLERATED_DEFECTS) for d in value.defects):
            return HeaderProblem.MALFORMED
        groups = value.groups
    except Exception:        # the stdlib parser raises IndexError on some truncated input
        return HeaderProblem.MALFORMED
    if not groups:
        return HeaderProblem.MALFORMED
    for group in groups:
        if group.display_name is not None:
            return HeaderProblem.GROUP
        for mailbox in group.addresses:
            try:
                found.append(parse_address(mailbox.addr_spec))
            except AddressError:
                return HeaderProblem.MALFORMED
    return None


def missing_fields(header: bytes) -> tuple[str, ...]:
    """Which of `Date` and `Message-ID` the header section lacks (RFC 6409 8.1, 8.2)."""
    message = parse_header(header)
    return tuple(name for name in ("Date", "Message-ID") if name not in message)


def date_field(timestamp: float) -> bytes:
    """A `Date` field (RFC 5322 3.3) for `timestamp`, in UTC, CRLF-terminated."""
    value = email.utils.format_datetime(datetime.fromtimestamp(timestamp, UTC))
    return f"Date: {value}\r\n".encode()


def message_id_field(unique: str, hostname: str) -> bytes:
    """A `Message-ID` field (RFC 5322 3.6.4) `<unique@hostname>`, CRLF-terminated."""
    return f"Message-ID: <{unique}@{hostname}>\r\n".encode()


def with_fields(content: bytes, fields: bytes) -> bytes:
    """The message with `fields` appended to its header section."""
    header, rest = split_header(content)
    if header and not header.endswith(b"\n"):
        header += b"\r\n"
    return header + fields + rest


def received_field(hostname: str, protocol: str, queue_id: str, timestamp: float) -> bytes:
    """The trace field for a submitted message, CRLF-terminated.

    Privacy choice: no `from` clause. The client's address and HELO name would tell every
    recipient where the user was and what their computer is called; the engine log keeps
    them with the queue id for the admin. Large providers stamp submissions the same way.
    """
    date = email.utils.format_datetime(datetime.fromtimestamp(timestamp, UTC))
    return (f"Received: by {hostname} (Mailstead) with {protocol} id {queue_id};\r\n"
            f"\t{date}\r\n").encode()
