"""IMAP response values to bytes: atoms, strings (quoted or literal), NIL, numbers, lists.

Every part of the server that writes data items (FETCH, ENVELOPE, BODYSTRUCTURE, LIST,
STATUS, ...) builds them from these Python values and calls `render`, so quoting rules live in
one place (RFC 9051 section 4.3):

- `None` → `NIL`; `int` → a number; `Atom("\\\\Seen")` → the atom as is;
- `str`/`bytes` → a quoted string when every byte may appear in one, else a literal
  (`{n}\\r\\n...`); a non-ASCII `str` is quoted only when the session enabled UTF-8
  (`utf8=True`: RFC 9051 / UTF8=ACCEPT), else sent as a literal;
- `Literal(data)` → always a literal, `Literal(data, binary=True)` → `~{n}` (RFC 3516);
- `list`/`tuple` → a parenthesised, space-separated list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

_QUOTED_SPECIALS = frozenset(b'"\\')
_NOT_IN_QUOTED = frozenset(b"\r\n\x00")
# atom-specials (RFC 9051 9): ( ) { SP CTL % * " \ ]  -- and non-ASCII.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | frozenset(range(0x7F, 0x100))


@dataclass(frozen=True)
class Atom:
    """A token written as is: NIL-free atoms, flags, section names."""

    text: str


@dataclass(frozen=True)
class Literal:
    """Bytes always sent as a literal (message data); `binary` makes it a literal8."""

    data: bytes
    binary: bool = False


Value: TypeAlias = int | str | bytes | Atom | Literal | Sequence["Value"] | None


def render(value: Value, utf8: bool = False) -> bytes:
    """The wire form of `value` (see the module docstring)."""
    out: list[bytes] = []
    _render(value, utf8, out)
    return b"".join(out)


def _render(value: Value, utf8: bool, out: list[bytes]) -> None:
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, bool):
        raise TypeError("booleans are not IMAP values")
    elif isinstance(value, int):
        out.append(str(value).encode("ascii"))
    elif isinstance(value, str):
        out.append(string(value, utf8))
    elif isinstance(value, bytes):
        out.append(string_bytes(value))
    elif isinstance(value, Atom):
        out.append(value.text.encode("utf-8"))
    elif isinstance(value, Literal):
        out.append(literal(value.data, value.binary))
    else:
        out.append(b"(")
        for index, item in enumerate(value):
            if index:
                out.append(b" ")
            _render(item, utf8, out)
        out.append(b")")


def string(text: str, utf8: bool = False) -> bytes:
    """A quoted string if possible, else a literal."""
    data = text.encode("utf-8", "surrogateescape")
    if not utf8 and not data.isascii():
        return literal(data)
    return string_bytes(data, allow_8bit=utf8)


def string_bytes(data: bytes, allow_8bit: bool = False) -> bytes:
    """`data` quoted (with `\\"` and `\\\\` escaped) when it can be, else as a literal."""
    if len(data) > 1024 or not _NOT_IN_QUOTED.isdisjoint(data) or (
            not allow_8bit and not data.isascii()):
        return literal(data)
    if not _QUOTED_SPECIALS.isdisjoint(data):
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def nstring(data: bytes | str | None, utf8: bool = False) -> bytes:
    if data is None:
        return b"NIL"
    return string(data, utf8) if isinstance(data, str) else string_bytes(data)


def astring(text: str, utf8: bool = False) -> bytes:
    """An atom when `text` is a valid atom (mailbox names, e.g.), else a string."""
    data = text.encode("utf-8", "surrogateescape")
    if data and _ATOM_SPECIALS.isdisjoint(data) and data.upper() != b"NIL":
        return data
    return string(text, utf8)


def literal(data: bytes, binary: bool = False) -> bytes:
    prefix = b"~{" if binary else b"{"
    return prefix + str(len(data)).encode("ascii") + b"}\r\n" + data
