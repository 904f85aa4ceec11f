"""The SEARCH grammar (RFC 9051 6.4.4 and 9, RFC 3501 NEW/OLD/RECENT, RFC 7162 MODSEQ,
RFC 4731/9051 ESEARCH RETURN options, RFC 5182 SAVE/$) parsed into an AST of frozen
dataclasses; `search_eval` evaluates it.

    search          = "SEARCH" [search-return-opts] SP search-program
    search-program  = ["CHARSET" SP charset SP] search-key *(SP search-key)
    search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
    search-return-opt  = "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE"

Keys that only name flags (ANSWERED, UNSEEN, NEW, ...) become `FlagKey`s, and the address
and subject keys become `HeaderKey`s, so the evaluator has few cases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from appliance.imap.grammar import (
    UINT63_MAX,
    Cursor,
    ParseError,
    astring,
    atom,
    date,
    flag,
    keyword,
    mod_sequence,
    number,
    paren_list,
    quoted,
    utf8,
)
from appliance.imap.sequence_set import SequenceSet, sequence_set

CHARSETS = ("UTF-8", "US-ASCII")
RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE")


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class FlagKey:
    """The message has (`present`) or lacks `flag` (system flag, keyword or \\Recent)."""

    flag: str
    present: bool = True


@dataclass(frozen=True)
class HeaderKey:
    """`field` contains `value` (FROM, TO, CC, BCC, SUBJECT, HEADER); "" matches any
    message that has the field (RFC 9051 6.4.4, HEADER)."""

    field: str
    value: str


@dataclass(frozen=True)
class TextKey:
    """BODY (`headers` False) or TEXT (headers and body) contains `value`."""

    value: str
    headers: bool = False


@dataclass(frozen=True)
class DateKey:
    """BEFORE/ON/SINCE (`sent` False: INTERNALDATE) or SENTBEFORE/SENTON/SENTSINCE."""

    op: str          # "BEFORE", "ON" or "SINCE"
    date: dt.date
    sent: bool = False


@dataclass(frozen=True)
class SizeKey:
    """LARGER (`larger`) or SMALLER than `size` octets."""

    size: int
    larger: bool


@dataclass(frozen=True)
class SequenceKey:
    """A sequence set of message numbers, or of UIDs (`uid`)."""

    set: SequenceSet
    uid: bool = False


@dataclass(frozen=True)
class ModSeqKey:
    """MODSEQ [entry-name entry-type] value: mod-sequence at least `modseq` (RFC 7162 3.1.5)."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True)
class Not:
    key: SearchKey


@dataclass(frozen=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class And:
    keys: tuple[SearchKey, ...]


SearchKey: TypeAlias = (All | FlagKey | HeaderKey | TextKey | DateKey | SizeKey | SequenceKey
                        | ModSeqKey | Not | Or | And)


@dataclass(frozen=True)
class SearchProgram:
    """A whole SEARCH: the criteria, and the RETURN options (None: a plain SEARCH answered
    with `* SEARCH`; otherwise ESEARCH, where an empty RETURN () means ALL, RFC 4731 3.1)."""

    key: SearchKey
    charset: str = "UTF-8"
    return_options: tuple[str, ...] | None = None


_FLAG_KEYS: dict[str, FlagKey] = {
    "ANSWERED": FlagKey("\\Answered"), "UNANSWERED": FlagKey("\\Answered", False),
    "DELETED": FlagKey("\\Deleted"), "UNDELETED": FlagKey("\\Deleted", False),
    "DRAFT": FlagKey("\\Draft"), "UNDRAFT": FlagKey("\\Draft", False),
    "FLAGGED": FlagKey("\\Flagged"), "UNFLAGGED": FlagKey("\\Flagged", False),
    "SEEN": FlagKey("\\Seen"), "UNSEEN": FlagKey("\\Seen", False),
    "RECENT": FlagKey("\\Recent"), "OLD": FlagKey("\\Recent", False),
}
_HEADER_KEYS = ("FROM", "TO", "CC", "BCC", "SUBJECT")
_DATE_KEYS = {"BEFORE": ("BEFORE", False), "ON": ("ON", False), "SINCE": ("SINCE", False),
              "SENTBEFORE": ("BEFORE", True), "SENTON": ("ON", True),
              "SENTSINCE": ("SINCE", True)}


def search_program(c: Cursor) -> SearchProgram:
    """Everything after "SEARCH " up to the end of the command."""
    options: tuple[str, ...] | None = None
    if c.accept(b"RETURN "):
        options = tuple(dict.fromkeys(paren_list(c, _return_option)))
        c.sp()
    charset = "UTF-8"
    if c.accept(b"CHARSET "):
        charset = _charset(c)
        c.sp()
    keys = [search_key(c)]
    while not c.at_end():
        c.sp()
        keys.append(search_key(c))
    c.end()
    key = keys[0] if len(keys) == 1 else And(tuple(keys))
    return SearchProgram(key, charset, options)


def _return_option(c: Cursor) -> str:
    name = keyword(c)
    if name not in RETURN_OPTIONS:
        raise ParseError(f"Unknown RETURN option {name}")
    return name


def _charset(c: Cursor) -> str:
    """charset = atom / quoted; only UTF-8 and US-ASCII (RFC 9051 6.4.4: BADCHARSET)."""
    raw = quoted(c) if c.peek() == b'"' else atom(c).encode("ascii")
    name = raw.decode("ascii", "replace").upper()
    if name not in CHARSETS:
        raise ParseError("Unsupported charset", status="NO",
                         code="BADCHARSET (" + " ".join(CHARSETS) + ")")
    return name


def search_key(c: Cursor) -> SearchKey:
    """search-key (see the RFC 9051 ABNF; NEW/OLD/RECENT from RFC 3501)."""
    if c.peek() == b"(":
        keys = paren_list(c, search_key, allow_empty=False)
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if c.peek() in (b"$", b"*") or c.peek().isdigit():
        return SequenceKey(sequence_set(c))
    name = keyword(c)
    if name in _FLAG_KEYS:
        return _FLAG_KEYS[name]
    parser = _ARGUMENT_KEYS.get(name)
    if parser is None:
        raise ParseError(f"Unknown search key {name}")
    if name not in ("ALL", "NEW"):
        c.sp()
    with c.nested():
        return parser(c, name)


def _text(c: Cursor) -> str:
    return utf8(astring(c), "search string")


def _header(c: Cursor, name: str) -> SearchKey:
    if name != "HEADER":
        return HeaderKey(name, _text(c))
    field = astring(c)
    if not field or not all(0x21 <= byte <= 0x7E and byte != 0x3A for byte in field):
        raise ParseError("Invalid header field name")
    c.sp()
    return HeaderKey(field.decode("ascii").upper(), _text(c))


def _keyword(c: Cursor, name: str) -> SearchKey:
    value = flag(c)
    if value.startswith("\\"):
        raise ParseError(f"{name} takes a keyword, not a system flag")
    return FlagKey(value, name == "KEYWORD")


def _modseq(c: Cursor, name: str) -> SearchKey:
    """search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
    search-modseq-ext = SP entry-name SP entry-type-req  (RFC 7162 7)"""
    entry = entry_type = None
    if c.peek() == b'"':
        entry = utf8(quoted(c), "entry name")
        if not entry.lower().startswith("/flags/"):
            raise ParseError("Invalid MODSEQ entry name")
        c.sp()
        entry_type = keyword(c).lower()
        if entry_type not in ("priv", "shared", "all"):
            raise ParseError("Invalid MODSEQ entry type")
        c.sp()
    return ModSeqKey(mod_sequence(c, allow_zero=True), entry, entry_type)


def _date(c: Cursor, name: str) -> SearchKey:
    op, sent = _DATE_KEYS[name]
    return DateKey(op, date(c), sent)


def _or(c: Cursor, name: str) -> SearchKey:
    left = search_key(c)
    c.sp()
    return Or(left, search_key(c))


_ARGUMENT_KEYS: dict[str, Callable[[Cursor, str], SearchKey]] = {
    "ALL": lambda c, name: All(),
    "NEW": lambda c, name: And((FlagKey("\\Recent"), FlagKey("\\Seen", False))),
    **{name: _header for name in (*_HEADER_KEYS, "HEADER")},
    "BODY": lambda c, name: TextKey(_text(c)),
    "TEXT": lambda c, name: TextKey(_text(c), headers=True),
    **{name: _date for name in _DATE_KEYS},
    "KEYWORD": _keyword, "UNKEYWORD": _keyword,
    "LARGER": lambda c, name: SizeKey(number(c, UINT63_MAX), larger=True),
    "SMALLER": lambda c, name: SizeKey(number(c, UINT63_MAX), larger=False),
    "NOT": lambda c, name: Not(search_key(c)),
    "OR": _or,
    "UID": lambda c, name: SequenceKey(sequence_set(c), uid=True),
    "MODSEQ": _modseq,
}
