"""Evaluating a parsed SEARCH (`search_keys`) over messages, as pure functions over the
`MessageView` Protocol; and the ESEARCH (RFC 4731) and SAVE (RFC 5182) results.

String keys match a case-insensitive substring after Unicode casefolding (RFC 9051 6.4.4
leaves the comparator to the server; i;unicode-casemap in spirit). Dates are compared as
dates "in the mailbox's terms": INTERNALDATE's day in the mailbox's time zone, the Date:
header's day as written, both "disregarding time and timezone" (RFC 9051 6.4.4).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.imap.search_keys import (
    All,
    And,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SequenceKey,
    SizeKey,
    TextKey,
)
from appliance.imap.sequence_set import NumberSet

Predicate = Callable[["MessageView"], bool]


class MessageView(Protocol):
    """What SEARCH may ask about one message. `flags` includes \\Recent when the session
    holds the message as recent; header and body text come decoded (the MIME code's job)."""

    @property
    def uid(self) -> int: ...

    @property
    def seq(self) -> int: ...

    @property
    def flags(self) -> frozenset[str]: ...

    @property
    def internal_date(self) -> float: ...

    @property
    def size(self) -> int: ...

    @property
    def modseq(self) -> int: ...

    def header(self, name: str) -> Sequence[str]:
        """Every value of header field `name` (any case), decoded; empty when absent."""
        ...

    def headers_text(self) -> str:
        """The whole header section as text."""
        ...

    def body_text(self) -> str:
        """The body as text (decoded parts)."""
        ...


@dataclass(frozen=True)
class SearchContext:
    """The mailbox a SEARCH runs in: what "*" means, the saved result "$", its time zone."""

    highest_seq: int
    highest_uid: int
    saved: NumberSet | None = None
    tz: dt.tzinfo = field(default=dt.UTC)


def search(key: SearchKey, messages: Iterable[MessageView], ctx: SearchContext
           ) -> list[MessageView]:
    """The messages that match `key`, in the order given."""
    predicate = compile_key(key, ctx)
    return [message for message in messages if predicate(message)]


def matches(key: SearchKey, message: MessageView, ctx: SearchContext) -> bool:
    return compile_key(key, ctx)(message)


def compile_key(key: SearchKey, ctx: SearchContext) -> Predicate:
    """`key` as one predicate; sequence sets are resolved once here, not per message."""
    compiler = _COMPILERS[type(key)]
    return compiler(key, ctx)


def _all(key: All, ctx: SearchContext) -> Predicate:
    return lambda m: True


def _flag(key: FlagKey, ctx: SearchContext) -> Predicate:
    wanted, present = key.flag.lower(), key.present
    return lambda m: any(f.lower() == wanted for f in m.flags) == present


# How SEARCH compares text (RFC 9051 6.4.4: case-insensitive): the method itself, so a
# predicate run for every message of a folder pays no Python call per value.
_fold: Callable[[str], str] = str.casefold


def _header(key: HeaderKey, ctx: SearchContext) -> Predicate:
    needle, name = _fold(key.value), key.field.lower()

    def matches(m: MessageView) -> bool:
        # A loop, not any(...): no generator object per message (a fifth of a header
        # SEARCH's instructions).
        for value in m.header(name):  # noqa: SIM110
            if needle in _fold(value):
                return True
        return False
    return matches


def _text(key: TextKey, ctx: SearchContext) -> Predicate:
    needle = _fold(key.value)
    if key.headers:
        return lambda m: needle in _fold(m.headers_text()) or needle in _fold(m.body_text())
    return lambda m: needle in _fold(m.body_text())


def internal_day(message: MessageView, tz: dt.tzinfo) -> dt.date:
    return dt.datetime.fromtimestamp(message.internal_date, tz).date()


def sent_day(message: MessageView) -> dt.date | None:
    """The Date: header's date as written (time and zone disregarded); None if unusable."""
    for value in message.header("Date"):
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            try:
                return dt.date(parsed[0], parsed[1], parsed[2])
            except ValueError:
                return None
    return None


_DATE_OPS: dict[str, Callable[[dt.date, dt.date], bool]] = {
    "BEFORE": lambda day, ref: day < ref,
    "ON": lambda day, ref: day == ref,
    "SINCE": lambda day, ref: day >= ref,
}


def _date(key: DateKey, ctx: SearchContext) -> Predicate:
    op, ref = _DATE_OPS[key.op], key.date
    if key.sent:
        def sent(m: MessageView) -> bool:
            day = sent_day(m)
            return day is not None and op(day, ref)
        return sent
    return lambda m: op(internal_day(m, ctx.tz), ref)


def _size(key: SizeKey, ctx: SearchContext) -> Predicate:
    size = key.size
    if key.larger:
        return lambda m: m.size > size
    return lambda m: m.size < size


def _sequence(key: SequenceKey, ctx: SearchContext) -> Predicate:
    if key.uid:
        uids = key.set.resolve(ctx.highest_uid, ctx.saved)
        return lambda m: m.uid in uids
    # "$" holds UIDs or sequence numbers as SAVE recorded them; a session saves UIDs
    # (RFC 5182 2.1 lets it) and passes them here as `saved` for UID and plain SEARCH alike.
    if key.set.saved:
        saved = ctx.saved or NumberSet(())
        return lambda m: m.uid in saved
    numbers = key.set.resolve(ctx.highest_seq)
    return lambda m: m.seq in numbers


def _modseq(key: ModSeqKey, ctx: SearchContext) -> Predicate:
    modseq = key.modseq
    return lambda m: m.modseq >= modseq


def _not(key: Not, ctx: SearchContext) -> Predicate:
    inner = compile_key(key.key, ctx)
    return lambda m: not inner(m)


def _or(key: Or, ctx: SearchContext) -> Predicate:
    left, right = compile_key(key.left, ctx), compile_key(key.right, ctx)
    return lambda m: left(m) or right(m)


def _and(key: And, ctx: SearchContext) -> Predicate:
    parts = [compile_key(part, ctx) for part in key.keys]
    return lambda m: all(part(m) for part in parts)


# Each compiler takes its own key type; the dict is keyed by that type.
_COMPILERS: dict[type, Callable[[Any, SearchContext], Predicate]] = {
    All: _all, FlagKey: _flag, HeaderKey: _header, TextKey: _text,
    DateKey: _date, SizeKey: _size, SequenceKey: _sequence, ModSeqKey: _modseq,
    Not: _not, Or: _or, And: _and,
}


# -- results ----------------------------------------------------------------------------------

def esearch_data(numbers: Sequence[int], options: Sequence[str]) -> list[tuple[str, str]]:
    """The ESEARCH return data (RFC 4731 3.1) for matching `numbers` (ascending): MIN, MAX
    and ALL are left out when nothing matched; COUNT is always given; empty `options` is ALL.
    Values are already in wire form."""
    wanted = [option for option in options if option != "SAVE"]
    if not options:
        wanted = ["ALL"]
    out: list[tuple[str, str]] = []
    for option in wanted:
        if option == "COUNT":
            out.append(("COUNT", str(len(numbers))))
        elif numbers and option == "MIN":
            out.append(("MIN", str(numbers[0])))
        elif numbers and option == "MAX":
            out.append(("MAX", str(numbers[-1])))
        elif numbers and option == "ALL":
            out.append(("ALL", str(NumberSet.from_values(numbers))))
    return out


def saved_result(numbers: Sequence[int], options: Sequence[str]) -> NumberSet:
    """What SAVE keeps (RFC 5182 2.4): only MIN and/or MAX when they are the sole other
    options, else every match."""
    others = set(options) - {"SAVE"}
    if numbers and others and others <= {"MIN", "MAX"}:
        picked = ([numbers[0]] if "MIN" in others else []) + (
            [numbers[-1]] if "MAX" in others else [])
        return NumberSet.from_values(picked)
    return NumberSet.from_values(numbers)
