"""The DATA reader, sans-IO: octets in, one event out, whatever the pieces the octets came in.

Every case of the table is checked fed whole, byte by byte, and split in two at every
position, and the result must always be the same; hypothesis then splits it at random.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.smtp import replies
from appliance.smtp.body_checks import BodyError, BodyLimits
from appliance.smtp.data_reader import (
    NEED_DATA,
    DataReader,
    Event,
    MessageReceived,
    MessageRefused,
    ReaderMisuseError,
    unstuff,
)

LIMITS = BodyLimits(max_size=200, max_line=20)


def received(content: bytes) -> MessageReceived:
    return MessageReceived(content)


def refused(error: BodyError) -> MessageRefused:
    return MessageRefused(error)


# (name, octets after the 354, expected event, octets left for the command reader)
CASES: list[tuple[str, bytes, Event, bytes]] = [
    ("empty message", b".\r\n", received(b""), b""),
    ("header only", b"Subject: x\r\n.\r\n", received(b"Subject: x\r\n"), b""),
    ("headers and body", b"A: b\r\n\r\nbody\r\n.\r\n", received(b"A: b\r\n\r\nbody\r\n"), b""),
    ("empty first line", b"\r\n.\r\n", received(b"\r\n"), b""),
    ("pipelined commands after the end", b"x\r\n.\r\nQUIT\r\n", received(b"x\r\n"),
     b"QUIT\r\n"),
    ("only the first end counts", b"a\r\n.\r\nb\r\n.\r\n", received(b"a\r\n"), b"b\r\n.\r\n"),
    ("dot-stuffed first line", b"..a\r\n.\r\n", received(b".a\r\n"), b""),
    ("dot-stuffed later line", b"a\r\n..\r\n...b\r\n.\r\n", received(b"a\r\n.\r\n..b\r\n"),
     b""),
    ("unstuffed leading dot is removed (RFC 5321 4.5.2)", b".a\r\n.b\r\n.\r\n",
     received(b"a\r\nb\r\n"), b""),
    ("dot inside a line stays", b"a.b\r\nc .\r\n.\r\n", received(b"a.b\r\nc .\r\n"), b""),
    ("no end yet", b"a\r\n.", NEED_DATA, b""),
    ("no end yet, nothing", b"", NEED_DATA, b""),
    ("8-bit octets", b"\xc3\xa9\xff\r\n.\r\n", received(b"\xc3\xa9\xff\r\n"), b""),
    # SMTP smuggling (CVE-2023-51764): fake ends are no ends, and they refuse the message.
    ("LF.LF", b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("LF.CRLF", b"a\n.\r\nRSET\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("CRLF.LF", b"a\r\n.\nRSET\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("CR.CRLF", b"a\r.\r\nRSET\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("CRLF.CR", b"a\r\n.\rRSET\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("CR.CR", b"a\r.\rRSET\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("bare LF first", b"\n.\r\nx\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("bare CR before CRLF", b"a\r\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("bare LF after CRLF", b"a\r\n\nb\r\n.\r\n", refused(BodyError.BARE_LINE_END), b""),
    ("refused, then pipelined", b"a\nb\r\n.\r\nNOOP\r\n", refused(BodyError.BARE_LINE_END),
     b"NOOP\r\n"),
    ("NUL", b"a\x00b\r\n.\r\n", refused(BodyError.NUL), b""),
    ("NUL in the end's line", b"\x00.\r\n.\r\n", refused(BodyError.NUL), b""),
    # Line length: 20 octets with CRLF, one more when the line starts with the stuffed dot.
    ("longest line", b"x" * 18 + b"\r\n.\r\n", received(b"x" * 18 + b"\r\n"), b""),
    ("line one too long", b"x" * 19 + b"\r\n.\r\n", refused(BodyError.LINE_TOO_LONG), b""),
    ("longest dot-stuffed line", b"." + b"." * 18 + b"\r\n.\r\n",
     received(b"." * 18 + b"\r\n"), b""),
    ("dot-stuffed line one too long", b"." + b"y" * 19 + b"\r\n.\r\n",
     refused(BodyError.LINE_TOO_LONG), b""),
    ("long line later", b"a\r\n" + b"z" * 30 + b"\r\nb\r\n.\r\n",
     refused(BodyError.LINE_TOO_LONG), b""),
    # Size: 200 octets as sent, the end of data not counted.
    ("largest message", (b"m" * 18 + b"\r\n") * 10 + b".\r\n",
     received((b"m" * 18 + b"\r\n") * 10), b""),
    ("one octet too big", (b"m" * 18 + b"\r\n") * 10 + b"\r\n.\r\n",
     refused(BodyError.TOO_BIG), b""),
    ("far too big", (b"m" * 18 + b"\r\n") * 500 + b".\r\n", refused(BodyError.TOO_BIG), b""),
    # Several faults: the most telling one is reported, wherever each occurs.
    ("too big and bare LF", (b"m" * 18 + b"\r\n") * 20 + b"a\nb\r\n.\r\n",
     refused(BodyError.BARE_LINE_END), b""),
    ("NUL and long line", b"q" * 40 + b"\r\n\x00\r\n.\r\n", refused(BodyError.NUL), b""),
]
IDS = [case[0] for case in CASES]


def feed_all(pieces: list[bytes], limits: BodyLimits = LIMITS) -> tuple[Event, bytes]:
    """The event after feeding `pieces` (up to the end of data), and every octet after it."""
    reader = DataReader(limits)
    for index, piece in enumerate(pieces):
        reader.feed(piece)
        if reader.next_event() is not NEED_DATA:
            return reader.next_event(), reader.unused + b"".join(pieces[index + 1:])
    return reader.next_event(), b""


def splits(data: bytes) -> list[list[bytes]]:
    """Whole, byte by byte, and in two at every position."""
    return [[data], [data[i:i + 1] for i in range(len(data))],
            *([data[:i], data[i:]] for i in range(1, len(data)))]


@pytest.mark.parametrize(("name", "data", "expected", "rest"), CASES, ids=IDS)
def test_case_gives_the_same_event_however_split(
        name: str, data: bytes, expected: Event, rest: bytes) -> None:
    for pieces in splits(data):
        assert feed_all(pieces) == (expected, rest), (name, pieces)


@pytest.mark.parametrize(("name", "data", "expected", "rest"), CASES, ids=IDS)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_case_gives_the_same_event_split_at_random(
        name: str, data: bytes, expected: Event, rest: bytes, cuts: list[int]) -> None:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed_all(pieces)[0] == expected


def test_refusal_replies_come_from_the_catalogue() -> None:
    assert MessageRefused(BodyError.BARE_LINE_END).reply == replies.BARE_LINE_END
    assert MessageRefused(BodyError.NUL).reply == replies.NUL_IN_MESSAGE
    assert MessageRefused(BodyError.LINE_TOO_LONG).reply == replies.LINE_TOO_LONG
    assert MessageRefused(BodyError.TOO_BIG).reply == replies.MESSAGE_TOO_BIG


def test_partial_terminator_counts_what_could_start_the_end() -> None:
    reader = DataReader(LIMITS)
    assert reader.partial_terminator == 2          # the CRLF of the DATA line itself
    for piece, expected in [(b"a", 0), (b"\r", 1), (b"\n", 2), (b".", 3), (b"\r", 4),
                            (b"x", 0), (b"\r\n", 2)]:
        reader.feed(piece)
        assert reader.partial_terminator == expected, piece


def test_feeding_after_the_end_is_a_misuse() -> None:
    reader = DataReader(LIMITS)
    reader.feed(b".\r\n")
    with pytest.raises(ReaderMisuseError):
        reader.feed(b"more")


def test_refused_message_keeps_no_octets() -> None:
    reader = DataReader(BodyLimits(max_size=1000, max_line=1000))
    reader.feed(b"x" * 999 + b"\n")
    for _ in range(100):
        reader.feed(b"y" * 998 + b"\r\n")
    assert reader._checks._parts == []
    reader.feed(b".\r\n")
    assert reader.next_event() == MessageRefused(BodyError.BARE_LINE_END)


@pytest.mark.parametrize(("stuffed", "plain"), [
    (b"", b""), (b"..\r\n", b".\r\n"), (b"a\r\n..b\r\n", b"a\r\n.b\r\n"),
    (b".a\r\n", b"a\r\n"), (b"a.\r\n", b"a.\r\n"), (b"...\r\n", b"..\r\n"),
])
def test_unstuff(stuffed: bytes, plain: bytes) -> None:
    assert unstuff(stuffed) == plain
