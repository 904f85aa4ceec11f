"""Decoded text of a message for SEARCH (RFC 9051 6.4.4): header values with RFC 2047
encoded-words decoded, and text parts with their transfer encoding and charset undone.

SEARCH HEADER/SUBJECT/FROM/... match `decode_header(value)`; SEARCH BODY matches
`body_text(...)`; SEARCH TEXT matches both (`searchable_text`). Nothing here raises on
malformed input: undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from appliance.imap.mime import MESSAGE, MULTIPART, TEXT, Field, Part, parse_message
from appliance.imap.sections import (
    UnknownCteError,
    decode_base64,
    decode_transfer,
    transfer_encoding,
)

# RFC 2047 2: =?charset?encoding?encoded-text?=  (charset may carry *language, RFC 2231 5)
_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(rb"\A[ \t\r\n]+\Z")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _codec(charset: bytes) -> str:
    """A Python codec for a MIME charset name; UTF-8 when we do not know it."""
    name = charset.split(b"*", 1)[0].decode("ascii", "replace").strip().lower()
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def _decode_raw(data: bytes) -> str:
    """Header bytes outside encoded-words: UTF-8 (RFC 6532) else Latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_word(charset: bytes, encoding: bytes, text: bytes) -> str:
    if encoding.lower() == b"b":
        raw = decode_base64(text)
    else:   # RFC 2047 4.2: "_" is a space, =XX an octet
        raw = _QP_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), text.replace(b"_", b" "))
    return raw.decode(_codec(charset), "replace")


def decode_header(value: bytes) -> str:
    """An unfolded header value with RFC 2047 encoded-words decoded; white space between
    two adjacent encoded-words is dropped (RFC 2047 6.2)."""
    value = value.replace(b"\r", b"").replace(b"\n", b"")
    out: list[str] = []
    pos = 0
    last_was_word = False
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos:match.start()]
        if not (last_was_word and _BETWEEN_WORDS.match(between)):
            out.append(_decode_raw(between))
        out.append(_decode_word(match.group(1), match.group(2), match.group(3)))
        pos = match.end()
        last_was_word = True
    out.append(_decode_raw(value[pos:]))
    return "".join(out)


def header_text(fields: list[Field]) -> str:
    """Every field as `Name: decoded value`, one per line."""
    return "".join(f"{_decode_raw(item.name)}: {decode_header(item.value)}\n"
                   for item in fields)


def part_text(part: Part) -> str:
    """The text of a text/* leaf: transfer encoding and charset undone."""
    try:
        raw = decode_transfer(part.body, transfer_encoding(part))
    except UnknownCteError:
        raw = part.body
    charset = part.content_type.param(b"charset") if part.content_type else None
    if charset is None:
        return _decode_raw(raw)
    return raw.decode(_codec(charset), "replace")


def _text_parts(part: Part) -> Iterator[str]:
    if part.kind == MULTIPART:
        for child in part.children:
            yield from _text_parts(child)
    elif part.kind == MESSAGE:
        for child in part.children:   # an attached message: its header and its text
            yield header_text(child.fields)
            yield from _text_parts(child)
    elif part.kind == TEXT:
        yield part_text(part)


def body_text(message: bytes | Part) -> str:
    """What SEARCH BODY looks in: the decoded text parts (and attached messages)."""
    root = message if isinstance(message, Part) else parse_message(message)
    return "\n".join(_text_parts(root))


def searchable_text(message: bytes) -> tuple[str, str]:
    """(header text, body text) of a message, for SEARCH TEXT / HEADER / BODY."""
    root = parse_message(message)
    return header_text(root.fields), body_text(root)
