"""The IMAP grammar's building blocks (RFC 9051 section 9, RFC 3501 section 9): a cursor over
one command's argument text and literals, and the parsers for atoms, strings, numbers,
dates, flags, mailbox names and parenthesised lists that every command parser uses.

Each parser takes a `Cursor`, consumes what it parsed and returns the value, or raises
`ParseError` saying what to answer (BAD with a human text, or NO with a response code).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from appliance.imap import mutf7
from appliance.imap.literals import LiteralData

T = TypeVar("T")

MAX_NESTING = 64          # parenthesised lists and NOT/OR chains (SEARCH groups, ...)
UINT32_MAX = 2**32 - 1
UINT63_MAX = 2**63 - 1


class ParseError(Exception):
    """The arguments do not parse: answer `status` (BAD, or NO with `code`) and `text`."""

    def __init__(self, text: str, status: str = "BAD", code: str | None = None) -> None:
        super().__init__(text)
        self.text, self.status, self.code = text, status, code


# ATOM-CHAR = <any CHAR except atom-specials>
# atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM = re.compile(rb"[^(){ \x00-\x1f\x7f-\xff%*\"\\\]]+")
# ASTRING-CHAR = ATOM-CHAR / resp-specials
_ASTRING = re.compile(rb"[^(){ \x00-\x1f\x7f-\xff%*\"\\]+")
# list-char = ATOM-CHAR / list-wildcards / resp-specials
_LIST_CHARS = re.compile(rb"[^(){ \x00-\x1f\x7f-\xff\"\\]+")
# literal = "{" number64 ["+"] "}" CRLF *CHAR8; literal8 = "~{" number64 "}" CRLF *OCTET
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}")
_DIGITS = re.compile(rb"[0-9]+")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
# (a one-digit day without its space is taken too: RFC 3501's own APPEND example has one)
_DATE_TIME = re.compile(
    rb'"( ?[0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"')
# date-text = date-day "-" date-month "-" date-year;  date-day = 1*2DIGIT
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
SYSTEM_FLAGS = {f.upper(): f for f in
                ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")}


class Cursor:
    """A position in one command's argument text, with its literals (in order)."""

    def __init__(self, data: bytes, literals: Sequence[LiteralData] = (),
                 max_depth: int = MAX_NESTING) -> None:
        self.data, self.literals, self.max_depth = data, literals, max_depth
        self.pos = 0
        self.depth = 0
        self._literal_index = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self, size: int = 1) -> bytes:
        return self.data[self.pos:self.pos + size]

    def match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        found = pattern.match(self.data, self.pos)
        if found:
            self.pos = found.end()
        return found

    def accept(self, token: bytes) -> bool:
        """Consume `token` (ASCII, compared without case) if it comes next."""
        if self.data[self.pos:self.pos + len(token)].upper() == token.upper():
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        if not self.accept(token):
            raise ParseError(f"Expected {what or token.decode()!s} at {self.where()}")

    def sp(self) -> None:
        self.expect(b" ", "a space")

    def end(self) -> None:
        """Require that nothing is left (commands end here)."""
        if not self.at_end():
            raise ParseError(f"Unexpected text at {self.where()}")
        if self._literal_index != len(self.literals):
            raise ParseError("Unexpected literal")

    def where(self) -> str:
        rest = self.data[self.pos:self.pos + 20]
        # repr of bytes is printable ASCII: safe to echo in a response line.
        return repr(rest)[1:] if rest else "end of command"

    def next_literal(self, size: int) -> LiteralData:
        if self._literal_index >= len(self.literals):
            raise ParseError("Literal header without literal data")
        literal = self.literals[self._literal_index]
        if literal.size != size:
            raise ParseError("Literal size mismatch")
        self._literal_index += 1
        return literal

    @contextmanager
    def nested(self) -> Iterator[None]:
        """One level of parentheses deeper; BAD past `max_depth`."""
        if self.depth >= self.max_depth:
            raise ParseError("Too deeply nested parentheses")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


# -- atoms and strings ------------------------------------------------------------------------

def atom(c: Cursor) -> str:
    """atom = 1*ATOM-CHAR"""
    found = c.match(_ATOM)
    if not found:
        raise ParseError(f"Expected an atom at {c.where()}")
    return found.group().decode("ascii")


def keyword(c: Cursor) -> str:
    """An atom in upper case (command, item and option names)."""
    return atom(c).upper()


def astring(c: Cursor) -> bytes:
    """astring = 1*ASTRING-CHAR / string"""
    found = c.match(_ASTRING)
    if found:
        return found.group()
    return string(c)


def string(c: Cursor) -> bytes:
    """string = quoted / literal"""
    if c.peek() == b'"':
        return quoted(c)
    data = literal(c, allow_binary=False).read()
    if b"\x00" in data:       # CHAR8 = %x01-ff (RFC 9051 9)
        raise ParseError("NUL in a string")
    return data


def quoted(c: Cursor) -> bytes:
    """quoted = DQUOTE *QUOTED-CHAR DQUOTE
    QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\\" quoted-specials /
                  UTF8-2 / UTF8-3 / UTF8-4"""
    c.expect(b'"', "a quoted string")
    out = bytearray()
    data = c.data
    while c.pos < len(data):
        char = data[c.pos]
        c.pos += 1
        if char == 0x22:
            return bytes(out)
        if char == 0x5C:
            if c.pos >= len(data) or data[c.pos] not in b'"\\':
                raise ParseError("Invalid escape in quoted string")
            char = data[c.pos]
            c.pos += 1
        elif char in b"\r\n\x00":
            raise ParseError("Invalid character in quoted string")
        out.append(char)
    raise ParseError("Unterminated quoted string")


def literal(c: Cursor, allow_binary: bool = True) -> LiteralData:
    """literal / literal8 (RFC 3516: only APPEND takes literal8)."""
    found = c.match(_LITERAL)
    if not found:
        raise ParseError(f"Expected a string at {c.where()}")
    if found.group(1) and not allow_binary:
        raise ParseError("literal8 is not allowed here")
    return c.next_literal(int(found.group(2)))


def nstring(c: Cursor) -> bytes | None:
    """nstring = string / nil"""
    if _nil(c):
        return None
    return string(c)


def _nil(c: Cursor) -> bool:
    start = c.pos
    if c.accept(b"NIL") and (c.at_end() or c.peek() in b" )"):
        return True
    c.pos = start
    return False


def utf8(data: bytes, what: str = "string") -> str:
    """Strict UTF-8 text (RFC 9051 and RFC 6855 allow nothing else)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"Invalid UTF-8 in {what}") from None


# -- numbers ----------------------------------------------------------------------------------

def number(c: Cursor, maximum: int = UINT32_MAX) -> int:
    """number = 1*DIGIT  ; unsigned 32-bit;  number64 with maximum=UINT63_MAX"""
    found = c.match(_DIGITS)
    if not found:
        raise ParseError(f"Expected a number at {c.where()}")
    value = int(found.group()) if len(found.group()) <= 20 else maximum + 1
    if value > maximum:
        raise ParseError("Number out of range")
    return value


def nz_number(c: Cursor, maximum: int = UINT32_MAX) -> int:
    """nz-number = digit-nz *DIGIT"""
    value = number(c, maximum)
    if value == 0:
        raise ParseError("Zero is not allowed here")
    return value


def mod_sequence(c: Cursor, allow_zero: bool = False) -> int:
    """mod-sequence-value = 1*DIGIT ; positive 63-bit (RFC 7162 7);  mod-sequence-valzer
    allows 0."""
    return number(c, UINT63_MAX) if allow_zero else nz_number(c, UINT63_MAX)


# -- dates ------------------------------------------------------------------------------------

def _month(name: bytes) -> int:
    try:
        return _MONTHS.index(name.decode("ascii").upper()) + 1
    except ValueError:
        raise ParseError("Invalid month") from None


def date(c: Cursor) -> dt.date:
    """date = date-text / DQUOTE date-text DQUOTE"""
    quoted_date = c.accept(b'"')
    found = c.match(_DATE)
    if not found or (quoted_date and not c.accept(b'"')):
        raise ParseError(f"Expected a date (dd-Mon-yyyy) at {c.where()}")
    try:
        return dt.date(int(found.group(3)), _month(found.group(2)), int(found.group(1)))
    except ValueError:
        raise ParseError("Invalid date") from None


def date_time(c: Cursor) -> dt.datetime:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE"""
    found = c.match(_DATE_TIME)
    if not found:
        raise ParseError(f"Expected a date-time at {c.where()}")
    day, month, year, hour, minute, second, sign, zh, zm = found.groups()
    offset = dt.timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == b"-" else 1)
    try:
        return dt.datetime(int(year), _month(month), int(day), int(hour), int(minute),
                           int(second), tzinfo=dt.timezone(offset))
    except ValueError:
        raise ParseError("Invalid date-time") from None


# -- flags ------------------------------------------------------------------------------------

def flag(c: Cursor) -> str:
    """flag = "\\Answered" / "\\Flagged" / "\\Deleted" / "\\Seen" / "\\Draft" /
              flag-keyword / flag-extension;  flag-extension = "\\" atom
    System flags come back in their canonical case."""
    if c.accept(b"\\"):
        name = "\\" + atom(c)
        return SYSTEM_FLAGS.get(name.upper(), name)
    return atom(c)


def flag_list(c: Cursor) -> tuple[str, ...]:
    """flag-list = "(" [flag *(SP flag)] ")" """
    return tuple(paren_list(c, flag))


# -- lists ------------------------------------------------------------------------------------

def paren_list(c: Cursor, item: Callable[[Cursor], T], allow_empty: bool = True) -> list[T]:
    """"(" [item *(SP item)] ")" """
    c.expect(b"(", "'('")
    items: list[T] = []
    with c.nested():
        while not c.accept(b")"):
            if items:
                c.sp()
            if c.at_end():
                raise ParseError("Unbalanced parentheses")
            items.append(item(c))
    if not items and not allow_empty:
        raise ParseError("Empty list")
    return items


# -- mailbox names ----------------------------------------------------------------------------

def mailbox(c: Cursor, utf8_enabled: bool) -> str:
    """mailbox = "INBOX" / astring   ; INBOX is case-insensitive (RFC 9051 5.1)"""
    return decode_mailbox(astring(c), utf8_enabled)


def list_mailbox(c: Cursor, utf8_enabled: bool) -> str:
    """list-mailbox = 1*list-char / string  (LIST/LSUB patterns with % and *)"""
    found = c.match(_LIST_CHARS)
    return decode_mailbox(found.group() if found else string(c), utf8_enabled, inbox=False)


def decode_mailbox(raw: bytes, utf8_enabled: bool, inbox: bool = True) -> str:
    """A mailbox name on the wire to our UTF-8 name: UTF-8 after ENABLE UTF8=ACCEPT
    (RFC 6855 3) or IMAP4rev2, else modified UTF-7 (RFC 3501 5.1.3)."""
    if utf8_enabled:
        name = utf8(raw, "mailbox name")
    else:
        if not raw.isascii():
            raise ParseError("Mailbox name is not modified UTF-7 (8-bit without UTF8=ACCEPT)")
        try:
            name = mutf7.decode(raw.decode("ascii"), strict=False)
        except ValueError as exc:
            raise ParseError(f"Invalid modified UTF-7 mailbox name: {exc}") from None
    if inbox and name.upper() == "INBOX":
        return "INBOX"
    return name
