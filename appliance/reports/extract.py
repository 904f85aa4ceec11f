"""Finding report attachments in a mail message, and reading a raw report file (pure).

A part is a candidate by its content type or its file name: DMARC senders use application/
zip, application/gzip, application/x-gzip, application/xml, text/xml, or application/
octet-stream with a .zip/.gz/.xml name; TLS-RPT uses application/tlsrpt+gzip or
application/tlsrpt+json (RFC 8460 5.3). What a candidate holds is then decided by its
bytes, not its label: compression by magic number, then `<` for DMARC XML and `{` for
TLS-RPT JSON.
"""

from __future__ import annotations

import email
import email.message
import email.utils
from collections.abc import Iterator
from dataclasses import dataclass

from appliance.reports.dmarc import parse_dmarc
from appliance.reports.model import DEFAULT_LIMITS, Limits, Report, ReportError
from appliance.reports.tlsrpt import parse_tlsrpt
from appliance.reports.unpack import GZIP_MAGIC, ZIP_MAGIC, decompress

REPORT_TYPES = frozenset({
    "application/zip", "application/x-zip", "application/x-zip-compressed",
    "application/gzip", "application/x-gzip", "application/xml", "text/xml",
    "application/tlsrpt+gzip", "application/tlsrpt+json", "application/json",
})
REPORT_SUFFIXES = (".zip", ".gz", ".gzip", ".xml", ".json")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Found:
    """What one message held: the reports parsed and why the other candidates failed."""

    reports: tuple[Report, ...]
    errors: tuple[str, ...]


def parse_report(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Report:
    """One report file, compressed or not, of either kind.

    Raises:
        ReportError: not a report, or a malformed one.
    """
    content = decompress(data, limits)
    start = _first_character(content)
    if start == "<":
        return parse_dmarc(content, limits)
    if start == "{":
        return parse_tlsrpt(content, limits)
    if content.startswith((GZIP_MAGIC, ZIP_MAGIC)):
        raise ReportError("compressed twice")
    raise ReportError("neither DMARC XML nor TLS-RPT JSON")


def is_raw_report(data: bytes) -> bool:
    """Whether `data` is a report file (compressed, XML or JSON) rather than a message."""
    return data.startswith((GZIP_MAGIC, ZIP_MAGIC)) or _first_character(data) in ("<", "{")


def _first_character(content: bytes) -> str:
    """The first character after white space and a byte order mark (UTF-8 or UTF-16,
    which XML 1.0 4.3.3 and RFC 8259 8.1 readers accept), or "" when none is visible."""
    codec = "utf-16" if content.startswith(UTF16_BOMS) else "utf-8"
    head = content[:256].decode(codec, "ignore").lstrip("\ufeff \t\r\n")
    return head[:1]


def reports_in_message(message: bytes, limits: Limits = DEFAULT_LIMITS) -> Found:
    """Every report attached to `message` (RFC 5322 bytes), with the candidates' errors."""
    reports: list[Report] = []
    errors: list[str] = []
    try:     # the email package parses and walks nested multiparts recursively
        for part in _leaves(email.message_from_bytes(message), limits, errors):
            try:
                reports.append(parse_report(_payload(part), limits))
            except ReportError as exc:
                errors.append(f"{part.get_content_type()} {_filename(part)!r}: {exc}")
    except RecursionError:
        errors.append("MIME structure nested too deeply")
    return Found(tuple(reports), tuple(errors))


def _leaves(parsed: email.message.Message, limits: Limits,
            errors: list[str]) -> Iterator[email.message.Message]:
    """The candidate leaf parts, among the first `limits.max_parts` parts."""
    for index, part in enumerate(parsed.walk()):
        if index >= limits.max_parts:
            errors.append(f"more than {limits.max_parts} MIME parts: the rest not read")
            return
        if not part.is_multipart() and is_candidate(part):
            yield part


def is_candidate(part: email.message.Message) -> bool:
    """Whether a leaf part may hold a report: by its content type, or (for the generic
    types such as application/octet-stream) by its file name."""
    return (part.get_content_type() in REPORT_TYPES
            or _filename(part).lower().endswith(REPORT_SUFFIXES))


def _filename(part: email.message.Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name", header="content-type")
        if isinstance(name, tuple):          # RFC 2231 encoded
            name = email.utils.collapse_rfc2231_value(name)
    except (ValueError, LookupError, TypeError):
        return ""
    return name if isinstance(name, str) else ""


def _payload(part: email.message.Message) -> bytes:
    """The decoded body of a leaf part (base64, quoted-printable, or as is)."""
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, LookupError, TypeError) as exc:
        raise ReportError(f"undecodable part: {exc}") from None
    if not isinstance(payload, bytes):
        raise ReportError("part has no body")
    return payload
