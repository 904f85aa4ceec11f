"""BODY[section]<partial> and BINARY[section] / BINARY.SIZE (RFC 9051 6.4.5, RFC 3516).

A `Section` names a part by numbers and what of it to return; `section_bytes` cuts those
octets out of the message (CRLF line ends); `binary` returns a leaf part's content with its
Content-Transfer-Encoding undone (and larger parts with every leaf inside converted, as
Dovecot does). Part numbers follow RFC 9051 6.4.5 and Dovecot: a non-multipart part is its
own part 1, and numbers after a message/rfc822 part go into the encapsulated message. A
part that does not exist gives `None` (FETCH sends an empty string for it, as Dovecot does).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.imap.mime import MESSAGE, MULTIPART, Part, parse_message

HEADER, HEADER_FIELDS, HEADER_FIELDS_NOT, TEXT, MIME = (
    "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")
_IDENTITY = frozenset({b"7bit", b"8bit", b"binary"})
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]+")


class SectionError(Exception):
    """A section FETCH cannot answer; `code` is the IMAP response code for the NO."""

    code = "CANNOT"


class UnknownCteError(SectionError):
    """RFC 3516 4.3: the part's Content-Transfer-Encoding is not one we can undo."""

    code = "UNKNOWN-CTE"


@dataclass(frozen=True)
class Section:
    """`part` numbers (empty: the whole message) and `text` (None: the part's body; or
    HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME) with `fields` for the lists."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[bytes, ...] = ()


def find_part(root: Part, numbers: Iterable[int]) -> Part | None:
    """The part named by `numbers` (RFC 9051 6.4.5), None when there is none."""
    numbers = list(numbers)
    part: Part | None = root
    for index, number in enumerate(numbers):
        if part is None:
            return None
        more = index + 1 < len(numbers)
        if part.kind == MULTIPART:
            part = part.children[number - 1] if 0 < number <= len(part.children) else None
        elif number != 1 or (more and part.kind != MESSAGE):
            return None
        if part is not None and part.kind == MESSAGE and more:
            part = part.children[0] if part.children else None
    return part


def _fields_block(part: Part, names: tuple[bytes, ...], keep: bool) -> bytes:
    """HEADER.FIELDS (`keep`): the named fields, each ending in CRLF, then CRLF.
    HEADER.FIELDS.NOT: the header without the named fields, ending as the header does (no
    CRLF is added to a header that lacks its empty line; Dovecot does the same)."""
    wanted = {name.lower() for name in names}
    source = part.source
    chunks = [source[item.start:item.end] for item in part.fields
              if (item.name.lower() in wanted) == keep]
    if keep:
        return b"".join(_with_crlf(chunk) for chunk in chunks) + b"\r\n"
    tail_start = part.fields[-1].end if part.fields else part.offset
    return b"".join(chunks) + source[tail_start:part.header_end]


def _with_crlf(chunk: bytes) -> bytes:
    return chunk if chunk.endswith(b"\n") else chunk + b"\r\n"


def section_bytes(message: bytes | Part, section: Section) -> bytes | None:
    """The octets BODY[section] returns, before any <partial>; None if no such part."""
    root = message if isinstance(message, Part) else parse_message(message)
    part = find_part(root, section.part)
    if part is None:
        return None
    if section.text is None:
        return part.body if section.part else part.source
    if section.text == MIME:
        return part.header if section.part else None
    if section.part:
        # HEADER/TEXT of a part refer to its encapsulated message (RFC 9051 6.4.5)
        if part.kind != MESSAGE or not part.children:
            return None
        part = part.children[0]
    if section.text == HEADER:
        return part.header
    if section.text == TEXT:
        return part.body
    return _fields_block(part, section.fields, section.text == HEADER_FIELDS)


def partial(data: bytes, start: int, count: int | None = None) -> bytes:
    """<start.count> (RFC 9051 6.4.5): empty when `start` is past the end."""
    if start >= len(data):
        return b""
    return data[start:] if count is None else data[start:start + count]


def transfer_encoding(part: Part) -> bytes:
    """The part's Content-Transfer-Encoding, lowercased: 7bit when absent or not MIME, b""
    (unknown) when every such field is malformed."""
    token = part.transfer_encoding
    if token is None and part.is_mime and part.get(b"content-transfer-encoding") is not None:
        return b""          # only malformed ones ("base 64"): unknown, as Dovecot says
    return b"7bit" if token is None else token.lower()


def decode_base64(data: bytes) -> bytes:
    """Lenient base64 (RFC 2045 6.8): characters outside the alphabet are ignored,
    decoding stops at padding, and a dangling last group gives what bits it holds."""
    text = _B64_JUNK.sub(b"", data)
    pad = text.find(b"=")
    if pad >= 0:
        text = text[:pad]
    whole = len(text) - len(text) % 4
    out = binascii.a2b_base64(text[:whole]) if whole else b""
    rest = text[whole:]
    if len(rest) >= 2:
        out += binascii.a2b_base64(rest + b"=" * (4 - len(rest)))
    return out


def decode_qp(data: bytes) -> bytes:
    """Quoted-printable (RFC 2045 6.7), keeping CRLF line ends."""
    lines = data.split(b"\n")
    out = [binascii.a2b_qp(line.rstrip(b"\r").rstrip(b" \t")) for line in lines]
    joined = bytearray()
    for index, (raw, decoded) in enumerate(zip(lines, out, strict=True)):
        soft = raw.rstrip(b"\r").rstrip(b" \t").endswith(b"=")
        joined += decoded
        if index + 1 < len(lines) and not soft:
            joined += b"\r\n"
    return bytes(joined)


def decode_transfer(body: bytes, encoding: bytes) -> bytes:
    """`body` with `encoding` undone; UnknownCteError for encodings we do not know."""
    if encoding in _IDENTITY:
        return body
    if encoding == b"base64":
        return decode_base64(body)
    if encoding == b"quoted-printable":
        return decode_qp(body)
    raise UnknownCteError(f"unknown Content-Transfer-Encoding {encoding!r}")


def binary(message: bytes | Part, numbers: tuple[int, ...]) -> bytes | None:
    """BINARY[numbers] (RFC 3516 4.2); None if there is no such part.

    A leaf gives its decoded content. Like Dovecot, the whole message, a multipart's body
    and an attached message come with every leaf inside decoded and its
    Content-Transfer-Encoding field replaced by `binary` (RFC 3516 4.2 lets the server
    return the part "in binary"). UnknownCteError when some leaf cannot be decoded."""
    root = message if isinstance(message, Part) else parse_message(message)
    part = find_part(root, numbers)
    if part is None:
        return None
    if not numbers:
        return _converted(part)
    return _converted_body(part)


def _converted(part: Part) -> bytes:
    """Header and body of `part` with every leaf below it in binary."""
    if part.kind in (MULTIPART, MESSAGE) or transfer_encoding(part) in _IDENTITY:
        return part.header + _converted_body(part)
    body = decode_transfer(part.body, transfer_encoding(part))
    source = part.source
    kept = [source[item.start:item.end] for item in part.fields
            if not item.is_named(b"content-transfer-encoding")]
    tail_start = part.fields[-1].end if part.fields else part.offset
    return (b"".join(kept) + b"Content-Transfer-Encoding: binary\r\n"
            + source[tail_start:part.header_end] + body)


def _converted_body(part: Part) -> bytes:
    """The body of `part` with its children (if any) converted, the rest as it is."""
    if part.kind not in (MULTIPART, MESSAGE):
        return decode_transfer(part.body, transfer_encoding(part))
    out: list[bytes] = []
    cursor = part.body_offset
    for child in part.children:
        out += [part.source[cursor:child.offset], _converted(child)]
        cursor = child.end
    out.append(part.source[cursor:part.end])
    return b"".join(out)


def binary_size(message: bytes | Part, numbers: tuple[int, ...]) -> int | None:
    """BINARY.SIZE[numbers] (RFC 3516 4.2)."""
    data = binary(message, numbers)
    return None if data is None else len(data)
