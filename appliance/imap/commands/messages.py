"""Commands of the selected state (RFC 9051 6.4): CHECK, CLOSE, UNSELECT, EXPUNGE,
UID EXPUNGE (RFC 4315), SEARCH, FETCH, STORE (RFC 7162 UNCHANGEDSINCE), COPY, MOVE (RFC 6851),
each with its UID form (`uid` set)."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.imap.commands.base import ImapCommand, ParseContext
from appliance.imap.fetch_items import (
    FetchAttribute,
    FetchModifiers,
    fetch_attributes,
    fetch_modifiers,
)
from appliance.imap.grammar import Cursor, ParseError, flag, mailbox, mod_sequence, paren_list
from appliance.imap.search_keys import SearchProgram, search_program
from appliance.imap.sequence_set import SequenceSet, sequence_set
from appliance.storage.mailbox_api import FlagOperation


@dataclass(frozen=True)
class Check(ImapCommand):
    pass


@dataclass(frozen=True)
class Close(ImapCommand):
    pass


@dataclass(frozen=True)
class Unselect(ImapCommand):
    pass


@dataclass(frozen=True)
class Expunge(ImapCommand):
    """EXPUNGE, or UID EXPUNGE with `uids` (RFC 4315 2.1)."""

    uids: SequenceSet | None = None


@dataclass(frozen=True)
class Search(ImapCommand):
    program: SearchProgram
    uid: bool = False


@dataclass(frozen=True)
class Fetch(ImapCommand):
    sequence_set: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    modifiers: FetchModifiers = field(default_factory=FetchModifiers)
    uid: bool = False


@dataclass(frozen=True)
class Store(ImapCommand):
    sequence_set: SequenceSet
    operation: FlagOperation
    flags: tuple[str, ...]
    silent: bool = False
    unchanged_since: int | None = None
    uid: bool = False


@dataclass(frozen=True)
class Copy(ImapCommand):
    """COPY, or MOVE (`move`)."""

    sequence_set: SequenceSet
    mailbox: str
    move: bool = False
    uid: bool = False


def check(tag: str, c: Cursor, ctx: ParseContext) -> Check:
    c.end()
    return Check(tag)


def close(tag: str, c: Cursor, ctx: ParseContext) -> Close:
    c.end()
    return Close(tag)


def unselect(tag: str, c: Cursor, ctx: ParseContext) -> Unselect:
    c.end()
    return Unselect(tag)


def expunge(tag: str, c: Cursor, ctx: ParseContext) -> Expunge:
    c.end()
    return Expunge(tag)


def uid_expunge(tag: str, c: Cursor, ctx: ParseContext) -> Expunge:
    """uid-expunge = "UID" SP "EXPUNGE" SP sequence-set"""
    uids = sequence_set(c)
    c.end()
    return Expunge(tag, uids)


def search(tag: str, c: Cursor, ctx: ParseContext, uid: bool = False) -> Search:
    return Search(tag, search_program(c), uid)


def uid_search(tag: str, c: Cursor, ctx: ParseContext) -> Search:
    return search(tag, c, ctx, uid=True)


# What follows a FETCH's sequence set, parsed once per distinct text: a client downloading
# mail sends the same items for every message (mbsync one `UID FETCH n (BODY.PEEK[])` per
# message), and the parsed values are frozen, so they can be shared. Texts with literals
# are not kept; the table is emptied when full.
_ITEMS: dict[tuple[bytes, bool], tuple[tuple[FetchAttribute, ...], FetchModifiers]] = {}
_ITEMS_MAX = 256


def fetch(tag: str, c: Cursor, ctx: ParseContext, uid: bool = False) -> Fetch:
    """fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
               "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]"""
    numbers = sequence_set(c)
    c.sp()
    known = None if c.literals else fetch_items_of(c.data[c.pos:], uid)
    if known is None:                   # literals, or an error: parsed here to say which
        known = _fetch_items(c, uid)
    else:
        c.pos = len(c.data)
    return Fetch(tag, numbers, known[0], known[1], uid)


def fetch_items_of(text: bytes, uid: bool
                   ) -> tuple[tuple[FetchAttribute, ...], FetchModifiers] | None:
    """What `fetch` parses from `text` (all that follows the sequence set and its space),
    from the same kept table; None when `text` is not valid there (the full parse then
    gives the client its BAD)."""
    key = (text, uid)
    known = _ITEMS.get(key)
    if known is None:
        try:
            known = _fetch_items(Cursor(text), uid)
        except (ParseError, RecursionError):
            return None
        if len(_ITEMS) >= _ITEMS_MAX:
            _ITEMS.clear()
        _ITEMS[key] = known
    return known


def _fetch_items(c: Cursor, uid: bool) -> tuple[tuple[FetchAttribute, ...], FetchModifiers]:
    attributes = fetch_attributes(c)
    modifiers = FetchModifiers()
    if not c.at_end():
        c.sp()
        modifiers = fetch_modifiers(c)
        if modifiers.vanished and not uid:
            raise ParseError("VANISHED is only allowed with UID FETCH")   # RFC 7162 3.2.6
    c.end()
    return attributes, modifiers


def uid_fetch(tag: str, c: Cursor, ctx: ParseContext) -> Fetch:
    return fetch(tag, c, ctx, uid=True)


_STORE_OPERATIONS = {b"+": FlagOperation.ADD, b"-": FlagOperation.REMOVE}


def store(tag: str, c: Cursor, ctx: ParseContext, uid: bool = False) -> Store:
    """store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags
    store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer        (RFC 7162 7)
    store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))"""
    numbers = sequence_set(c)
    c.sp()
    unchanged_since = None
    if c.peek() == b"(":
        unchanged_since = _store_modifiers(c)
        c.sp()
    operation = _STORE_OPERATIONS.get(c.peek(), FlagOperation.REPLACE)
    if operation is not FlagOperation.REPLACE:
        c.pos += 1
    c.expect(b"FLAGS")
    silent = c.accept(b".SILENT")
    c.sp()
    if c.peek() == b"(":
        flags = paren_list(c, flag)
    else:
        flags = [flag(c)]
        while not c.at_end():
            c.sp()
            flags.append(flag(c))
    c.end()
    return Store(tag, numbers, operation, tuple(dict.fromkeys(flags)), silent,
                 unchanged_since, uid)


def _store_modifiers(c: Cursor) -> int:
    def modifier(c: Cursor) -> int:
        c.expect(b"UNCHANGEDSINCE ", "UNCHANGEDSINCE")
        return mod_sequence(c, allow_zero=True)
    return paren_list(c, modifier, allow_empty=False)[-1]


def uid_store(tag: str, c: Cursor, ctx: ParseContext) -> Store:
    return store(tag, c, ctx, uid=True)


def copy(tag: str, c: Cursor, ctx: ParseContext, move: bool = False,
         uid: bool = False) -> Copy:
    """copy = "COPY" SP sequence-set SP mailbox;  move = "MOVE" SP sequence-set SP mailbox"""
    numbers = sequence_set(c)
    c.sp()
    name = mailbox(c, ctx.utf8)
    c.end()
    return Copy(tag, numbers, name, move, uid)


def move(tag: str, c: Cursor, ctx: ParseContext) -> Copy:
    return copy(tag, c, ctx, move=True)


def uid_copy(tag: str, c: Cursor, ctx: ParseContext) -> Copy:
    return copy(tag, c, ctx, uid=True)


def uid_move(tag: str, c: Cursor, ctx: ParseContext) -> Copy:
    return copy(tag, c, ctx, move=True, uid=True)
