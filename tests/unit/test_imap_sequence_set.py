"""Sequence sets: parsing, resolving "*" and "$", and the compact NumberSet."""

from __future__ import annotations

import pytest

from appliance.imap.grammar import Cursor, ParseError
from appliance.imap.sequence_set import (
    STAR,
    NumberSet,
    SequenceSet,
    parse_sequence_set,
    sequence_set,
)

PARSED = [
    ("1", SequenceSet(((1, 1),))),
    ("1:*", SequenceSet(((1, STAR),))),
    ("*", SequenceSet(((STAR, STAR),))),
    ("*:4", SequenceSet(((STAR, 4),))),
    ("2,4:7,9,12:*", SequenceSet(((2, 2), (4, 7), (9, 9), (12, STAR)))),
    ("4:2", SequenceSet(((4, 2),))),
    ("4294967295", SequenceSet(((4294967295, 4294967295),))),
    ("$", SequenceSet(saved=True)),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse(text: str, expected: SequenceSet) -> None:
    parsed = parse_sequence_set(text)
    assert parsed == expected
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["", "0", "1:0", "4294967296", "1,", ",1", "1::2", "a",
                                  "1:", "-1", "$,1", "1 2", "1,$", "**"])
def test_invalid(text: str) -> None:
    with pytest.raises(ParseError):
        parse_sequence_set(text)


def test_long_lists_and_odd_numbers_parse_as_written() -> None:
    hundred = ",".join(str(n) for n in range(100, 10001, 100))
    assert parse_sequence_set(hundred).ranges == tuple((n, n) for n in range(100, 10001, 100))
    assert parse_sequence_set("01,007:*").ranges == ((1, 1), (7, STAR))   # leading zeros
    assert parse_sequence_set("4294967295:1").ranges == ((4294967295, 1),)
    c = Cursor(b"1:3,7 BODY[]")
    assert sequence_set(c).ranges == ((1, 3), (7, 7))
    assert c.pos == 5


def test_number_set_list_range_and_clip() -> None:
    numbers = NumberSet.from_ranges([(9, 9), (1, 3), (5, 5), (4, 4)])
    assert numbers.ranges == ((1, 5), (9, 9))
    assert numbers.to_list() == [1, 2, 3, 4, 5, 9]
    assert numbers.clip(9) is numbers
    assert numbers.clip(4).to_list() == [1, 2, 3, 4]
    assert NumberSet.from_ranges([(1, 7)]).is_range(1, 7)
    assert not numbers.is_range(1, 9)


def test_saved_not_allowed() -> None:
    with pytest.raises(ParseError):
        parse_sequence_set("$", allow_saved=False)


RESOLVED = [
    ("1:*", 5, "1:5"),
    ("*", 5, "5"),
    ("4:2", 5, "2:4"),
    ("*:3", 5, "3:5"),
    ("559:*", 300, "300:559"),       # RFC 9051 6.4.8: includes the last UID
    ("1,3,2,5:6,4", 10, "1:6"),       # merged, adjacent ranges joined
    ("7:9,1:8", 10, "1:9"),
    ("1:*", 0, ""),                   # empty mailbox: "*" means nothing
    ("3", 0, "3"),
]


@pytest.mark.parametrize(("text", "highest", "expected"), RESOLVED)
def test_resolve(text: str, highest: int, expected: str) -> None:
    assert str(parse_sequence_set(text).resolve(highest)) == expected


def test_resolve_saved() -> None:
    saved = NumberSet.from_values([3, 4, 9])
    assert parse_sequence_set("$").resolve(10, saved) == saved
    assert len(parse_sequence_set("$").resolve(10)) == 0


def test_number_set_operations() -> None:
    numbers = NumberSet.from_ranges([(5, 9), (1, 2), (20, 20), (8, 12)])
    assert numbers.ranges == ((1, 2), (5, 12), (20, 20))
    assert len(numbers) == 11
    assert list(numbers) == [1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 20]
    assert [n for n in range(25) if n in numbers] == list(numbers)
    assert "5" not in numbers
    assert numbers.min() == 1
    assert numbers.max() == 20
    assert numbers.select([2, 3, 4, 6, 13, 20, 21]) == [2, 6, 20]
    assert numbers.clip(6).ranges == ((1, 2), (5, 6))
    assert str(numbers) == "1:2,5:12,20"
    empty = NumberSet(())
    assert not empty
    assert empty.min() is None
    assert empty.max() is None
    assert empty.select([1, 2]) == []


def test_large_mailbox_is_compact_and_fast() -> None:
    uids = list(range(1, 20001, 2))             # 10,000 messages, odd UIDs
    numbers = parse_sequence_set("1:*").resolve(uids[-1])
    assert numbers.ranges == ((1, 19999),)      # one range, not 10,000 numbers
    assert numbers.select(uids) == uids
    every_other = NumberSet.from_values(uids)
    assert len(every_other.ranges) == 10000
    assert every_other.select(uids) == uids
    assert sum(1 for uid in range(1, 20001) if uid in every_other) == 10000


def test_full_32_bit_range_does_not_expand() -> None:
    numbers = parse_sequence_set("1:4294967295").resolve(10)
    assert len(numbers) == 4294967295
    assert 4294967295 in numbers
    assert numbers.select([1, 5, 4294967295]) == [1, 5, 4294967295]
