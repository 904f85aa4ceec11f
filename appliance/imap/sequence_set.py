"""Sequence sets (RFC 9051 9, RFC 5182 `$`): parsed as written, then resolved against a
mailbox into a compact set of sorted, disjoint ranges with fast membership and iteration.

    sequence-set = (seq-number / seq-range) ["," sequence-set] / "$"
    seq-range    = seq-number ":" seq-number
                   ; two seq-number values and all values between these two regardless
                   ; of order.  Example: 2:4 and 4:2 are equivalent.
    seq-number   = nz-number / "*"
                   ; "*" represents the largest number in use.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from appliance.imap.grammar import UINT32_MAX, Cursor, ParseError, nz_number

STAR = 0      # "*" in a parsed set: no real seq-number or UID is 0


@dataclass(frozen=True)
class SequenceSet:
    """A set as the client wrote it: ranges with `STAR` for "*", or `saved` for "$"."""

    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False

    def resolve(self, highest: int, saved: NumberSet | None = None) -> NumberSet:
        """The numbers meant, "*" being `highest` (the last seq-number or UID).

        RFC 9051 6.4.8: a UID range "559:*" always includes the last UID even when 559 is
        above it, which falls out of treating ranges in either order. With no messages,
        "*" stands for nothing. "$" is the saved SEARCH result (empty when none, RFC 5182 2.1).
        """
        if self.saved:
            return saved if saved is not None else NumberSet(())
        pairs: list[tuple[int, int]] = []
        for low, high in self.ranges:
            if highest == 0 and STAR in (low, high):
                continue
            low, high = low or highest, high or highest
            pairs.append((min(low, high), max(low, high)))
        return NumberSet.from_ranges(pairs)

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_range_text(low, high) for low, high in self.ranges)


def _range_text(low: int, high: int) -> str:
    def one(value: int) -> str:
        return "*" if value == STAR else str(value)
    return one(low) if low == high else f"{one(low)}:{one(high)}"


# A well-formed set of plain numbers and "*", matched in one step (a client's list of 100
# numbers costs one regex and a split instead of 300 cursor steps). Anything else -- a
# zero, a number past UINT32_MAX, a "," or ":" with nothing after it -- goes through the
# step-by-step parser below, which gives the exact error.
_NUMBER = rb"(?:[1-9][0-9]{0,9}|\*)"
_WELL_FORMED = re.compile(rb"%s(?::%s)?(?:,%s(?::%s)?)*(?![0-9:,*])" % ((_NUMBER,) * 4))


def sequence_set(c: Cursor, allow_saved: bool = True) -> SequenceSet:
    """Parse a sequence-set (or "$" when `allow_saved`)."""
    if c.accept(b"$"):
        if not allow_saved:
            raise ParseError("$ is not allowed here")
        return SequenceSet(saved=True)
    start = c.pos
    found = c.match(_WELL_FORMED)
    if found is not None:
        ranges = _ranges_of(found.group())
        if ranges is not None:
            return SequenceSet(ranges)
        c.pos = start
    return _sequence_set_by_steps(c)


def _ranges_of(text: bytes) -> tuple[tuple[int, int], ...] | None:
    """The ranges of a `_WELL_FORMED` set; None when a number is past UINT32_MAX."""
    ranges: list[tuple[int, int]] = []
    append = ranges.append
    for item in text.split(b","):
        low_text, _colon, high_text = item.partition(b":")
        low = STAR if low_text == b"*" else int(low_text)
        high = low if not high_text else STAR if high_text == b"*" else int(high_text)
        append((low, high))
    if any(low > UINT32_MAX or high > UINT32_MAX for low, high in ranges):
        return None
    return tuple(ranges)


def _sequence_set_by_steps(c: Cursor) -> SequenceSet:
    ranges: list[tuple[int, int]] = []
    while True:
        low = _seq_number(c)
        high = _seq_number(c) if c.accept(b":") else low
        ranges.append((low, high))
        if not c.accept(b","):
            return SequenceSet(tuple(ranges))


def _seq_number(c: Cursor) -> int:
    if c.accept(b"*"):
        return STAR
    return nz_number(c, UINT32_MAX)


def parse_sequence_set(text: bytes | str, allow_saved: bool = True) -> SequenceSet:
    """A whole string as one sequence set (tests, QRESYNC known-uids, stored results)."""
    c = Cursor(text.encode("ascii") if isinstance(text, str) else text)
    result = sequence_set(c, allow_saved)
    c.end()
    return result


class NumberSet:
    """Sorted, disjoint, non-adjacent inclusive ranges of positive numbers."""

    __slots__ = ("_highs", "_lows", "_size")

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        """`ranges` must already be sorted, disjoint and merged (see `from_ranges`)."""
        self._lows = [low for low, _ in ranges]
        self._highs = [high for _, high in ranges]
        self._size = sum(high - low + 1 for low, high in ranges)

    @classmethod
    def from_ranges(cls, pairs: Iterable[tuple[int, int]]) -> NumberSet:
        merged: list[tuple[int, int]] = []
        ordered = sorted(pairs)
        if all(ordered[i][1] + 1 < ordered[i + 1][0] for i in range(len(ordered) - 1)):
            return cls(ordered)         # already disjoint and apart (a client's list)
        for low, high in ordered:
            if merged and low <= merged[-1][1] + 1:
                if high > merged[-1][1]:
                    merged[-1] = (merged[-1][0], high)
            else:
                merged.append((low, high))
        return cls(merged)

    @classmethod
    def from_values(cls, values: Iterable[int]) -> NumberSet:
        return cls.from_ranges((value, value) for value in values)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self._lows, self._highs, strict=True))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        index = bisect.bisect_right(self._lows, value) - 1
        return index >= 0 and value <= self._highs[index]

    def __iter__(self) -> Iterator[int]:
        for low, high in zip(self._lows, self._highs, strict=True):
            yield from range(low, high + 1)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return bool(self._lows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumberSet) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __repr__(self) -> str:
        return f"NumberSet({self})"

    def __str__(self) -> str:
        """The wire form ("1:3,7"), as ESEARCH ALL and COPYUID send it."""
        return ",".join(_range_text(low, high) for low, high in self.ranges)

    def min(self) -> int | None:
        return self._lows[0] if self._lows else None

    def max(self) -> int | None:
        return self._highs[-1] if self._highs else None

    def select(self, sorted_values: Sequence[int]) -> list[int]:
        """The members of `sorted_values` (ascending, e.g. a mailbox's UIDs) in this set,
        found range by range with bisection."""
        out: list[int] = []
        for low, high in zip(self._lows, self._highs, strict=True):
            start = bisect.bisect_left(sorted_values, low)
            stop = bisect.bisect_right(sorted_values, high, lo=start)
            out.extend(sorted_values[start:stop])
        return out

    def to_list(self) -> list[int]:
        """`list(self)`, ascending, built range by range (a FETCH of 100 listed numbers)."""
        out: list[int] = []
        append, extend = out.append, out.extend
        for low, high in zip(self._lows, self._highs, strict=True):
            if low == high:
                append(low)
            else:
                extend(range(low, high + 1))
        return out

    def is_range(self, low: int, high: int) -> bool:
        """Whether the set is exactly `low`:`high` (e.g. 1:* resolved)."""
        return self._lows == [low] and self._highs == [high]

    def clip(self, highest: int) -> NumberSet:
        """Only the numbers up to `highest` (sequence numbers past the last message)."""
        if not self._highs or self._highs[-1] <= highest:
            return self                 # immutable: nothing to cut
        return NumberSet.from_ranges((low, min(high, highest))
                                     for low, high in self.ranges if low <= highest)
