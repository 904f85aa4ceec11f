"""The IMAP command receiver: octet streams in, commands, continuation requests and errors out;
limits give the right reply and the receiver is back in step at the next line."""

from __future__ import annotations

import tempfile
from typing import IO

import pytest

from appliance.imap.receiver import (
    NEED_DATA,
    Command,
    ContinuationRequest,
    Event,
    RawLine,
    Receiver,
    ReceiverError,
    ReceiverLimits,
)


def events(data: bytes, receiver: Receiver | None = None, chunk: int = 0) -> list[Event]:
    """Feed `data` (whole, or in pieces of `chunk` octets) and collect every event."""
    receiver = receiver or Receiver()
    out: list[Event] = []
    pieces = [data] if not chunk else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        receiver.feed(piece)
        while (event := receiver.next_event()) is not NEED_DATA:
            out.append(event)
    return out


def summary(event: Event) -> tuple[object, ...]:
    if isinstance(event, Command):
        return ("cmd", event.tag, event.name, event.args, tuple(lit.read() for lit in
                                                                 event.literals))
    if isinstance(event, ReceiverError):
        return ("err", event.tag, event.status, event.code, event.discard)
    if isinstance(event, ContinuationRequest):
        return ("+", event.size)
    assert isinstance(event, RawLine)
    return ("line", event.line)


CASES: list[tuple[str, bytes, list[tuple[object, ...]]]] = [
    ("simple", b"a1 NOOP\r\n", [("cmd", "a1", "NOOP", b"", ())]),
    ("name upper-cased", b"a1 noop\r\n", [("cmd", "a1", "NOOP", b"", ())]),
    ("bare LF accepted", b"a1 NOOP\n", [("cmd", "a1", "NOOP", b"", ())]),
    ("args kept", b"x SELECT INBOX\r\n", [("cmd", "x", "SELECT", b"INBOX", ())]),
    ("uid prefix is the name", b"t UID FETCH 1 UID\r\n",
     [("cmd", "t", "UID", b"FETCH 1 UID", ())]),
    ("two pipelined", b"a NOOP\r\nb CHECK\r\n",
     [("cmd", "a", "NOOP", b"", ()), ("cmd", "b", "CHECK", b"", ())]),
    ("sync literal", b"a LOGIN {5}\r\nalice pw\r\n",
     [("+", 5), ("cmd", "a", "LOGIN", b"{5} pw", (b"alice",))]),
    ("non-sync literal", b"a LOGIN {5+}\r\nalice {2+}\r\npw\r\n",
     [("cmd", "a", "LOGIN", b"{5+} {2+}", (b"alice", b"pw"))]),
    ("literal8", b"a APPEND x ~{3}\r\n\x00\x01\x02\r\n",
     [("+", 3), ("cmd", "a", "APPEND", b"x ~{3}", (b"\x00\x01\x02",))]),
    ("literal with CRLF inside", b"a APPEND x {4+}\r\n\r\n\r\n\r\n",
     [("cmd", "a", "APPEND", b"x {4+}", (b"\r\n\r\n",))]),
    ("empty literal", b"a LOGIN {0+}\r\n {0+}\r\n\r\n",
     [("cmd", "a", "LOGIN", b"{0+} {0+}", (b"", b""))]),
    ("empty line", b"\r\n", [("err", None, "BAD", None, 0)]),
    ("bad tag", b'a"b NOOP\r\n', [("err", None, "BAD", None, 0)]),
    ("plus in tag", b"a+ NOOP\r\n", [("err", None, "BAD", None, 0)]),
    ("8-bit tag", b"\xc3\xa9 NOOP\r\n", [("err", None, "BAD", None, 0)]),
    ("missing name", b"a1\r\n", [("err", "a1", "BAD", None, 0)]),
    ("missing name, SP", b"a1 \r\n", [("err", "a1", "BAD", None, 0)]),
    ("8-bit name", b"a1 N\xffOP\r\n", [("err", "a1", "BAD", None, 0)]),
    ("NUL", b"a1 NOOP \x00\r\nb NOOP\r\n",
     [("err", "a1", "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("bad tag then good", b"* NOOP\r\nb NOOP\r\n",
     [("err", None, "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("non-sync literal over LITERAL- limit is skipped",
     b"a APPEND x {5000+}\r\n" + b"z" * 5000 + b" more\r\nb NOOP\r\n",
     [("err", "a", "BAD", "TOOBIG", 5000), ("cmd", "b", "NOOP", b"", ())]),
    ("skipped literal followed by another non-sync literal",
     b"a APPEND x {5000+}\r\n" + b"z" * 5000 + b" {3+}\r\nabc\r\nb NOOP\r\n",
     [("err", "a", "BAD", "TOOBIG", 5000), ("cmd", "b", "NOOP", b"", ())]),
    ("sync literal too big: NO TOOBIG, nothing to skip",
     b"a APPEND x {60000000}\r\nb NOOP\r\n",
     [("err", "a", "NO", "TOOBIG", 0), ("cmd", "b", "NOOP", b"", ())]),
    ("sync literal number too long", b"a LOGIN {999999999999999999999}\r\nb NOOP\r\n",
     [("err", "a", "NO", "TOOBIG", 0), ("cmd", "b", "NOOP", b"", ())]),
    ("literal header needs its braces", b"a LOGIN {12\r\nb NOOP 12}\r\n",
     [("cmd", "a", "LOGIN", b"{12", ()), ("cmd", "b", "NOOP", b"12}", ())]),
]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in CASES],
                         ids=[name for name, _, _ in CASES])
@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_stream(data: bytes, expected: list[tuple[object, ...]], chunk: int) -> None:
    assert [summary(e) for e in events(data, chunk=chunk)] == expected


LIMITS = ReceiverLimits(max_line=40, max_tag=5, max_literal=100, max_literals=2,
                        max_command=150, max_non_sync_literal=10, spool_threshold=16)
LIMIT_CASES: list[tuple[str, bytes, list[tuple[object, ...]]]] = [
    ("line too long", b"a NOOP " + b"x" * 50 + b"\r\nb NOOP\r\n",
     [("err", "a", "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("line too long with no tag", b"x" * 60 + b"\r\nb NOOP\r\n",
     [("err", None, "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("overlong line ending with non-sync literal skips it",
     b"a X " + b"y" * 50 + b" {3+}\r\nabc\r\nb NOOP\r\n",
     [("err", "a", "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("text across literals counts", b"a X " + b"y" * 30 + b" {1+}\r\nz " + b"w" * 20 +
     b"\r\nb NOOP\r\n", [("err", "a", "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("tag too long", b"abcdef NOOP\r\nb NOOP\r\n",
     [("err", None, "BAD", None, 0), ("cmd", "b", "NOOP", b"", ())]),
    ("literal above max_literal (sync)", b"a APPEND x {101}\r\nb NOOP\r\n",
     [("err", "a", "NO", "TOOBIG", 0), ("cmd", "b", "NOOP", b"", ())]),
    ("too many literals", b"a X {1+}\r\n1 {1+}\r\n2 {1+}\r\n3\r\nb NOOP\r\n",
     [("err", "a", "BAD", None, 1), ("cmd", "b", "NOOP", b"", ())]),
    ("command total too big", b"a X {90}\r\n" + b"q" * 90 + b" {70}\r\nb NOOP\r\n",
     [("+", 90), ("err", "a", "NO", "TOOBIG", 0), ("cmd", "b", "NOOP", b"", ())]),
    ("non-sync at the LITERAL- limit is fine", b"a X {10+}\r\n0123456789\r\n",
     [("cmd", "a", "X", b"{10+}", (b"0123456789",))]),
]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in LIMIT_CASES],
                         ids=[name for name, _, _ in LIMIT_CASES])
@pytest.mark.parametrize("chunk", [0, 1, 5])
def test_limits(data: bytes, expected: list[tuple[object, ...]], chunk: int) -> None:
    # `discard` is only known when the whole line came at once, so it is not compared here.
    got = [summary(e)[:4] for e in events(data, Receiver(LIMITS), chunk=chunk)]
    assert got == [e[:4] for e in expected]


def test_literal_plus_has_no_4096_limit() -> None:
    limits = ReceiverLimits(max_non_sync_literal=None)
    data = b"a APPEND x {5000+}\r\n" + b"z" * 5000 + b"\r\n"
    (event,) = events(data, Receiver(limits))
    assert isinstance(event, Command)
    assert event.literals[0].read() == b"z" * 5000


def test_large_literal_streams_to_the_sink() -> None:
    made: list[int] = []

    def sink(size: int) -> IO[bytes]:
        made.append(size)
        return tempfile.TemporaryFile()

    receiver = Receiver(ReceiverLimits(spool_threshold=1024), sink=sink)
    body = bytes(range(256)) * 40
    got = events(b"a APPEND x {10240}\r\n" + body + b"\r\n", receiver, chunk=999)
    assert [summary(e)[0] for e in got] == ["+", "cmd"]
    command = got[1]
    assert isinstance(command, Command)
    literal = command.literals[0]
    assert made == [10240]
    assert not literal.in_memory
    assert literal.open().read() == body
    small = events(b"b LOGIN {3+}\r\nabc x\r\n", receiver)[0]
    assert isinstance(small, Command)
    assert small.literals[0].in_memory
    assert made == [10240]


def test_default_sink_spools_big_literals() -> None:
    receiver = Receiver(ReceiverLimits(spool_threshold=10))
    (_, command) = events(b"a APPEND x {20}\r\n" + b"0123456789" * 2 + b"\r\n", receiver)
    assert isinstance(command, Command)
    assert not command.literals[0].in_memory
    assert command.literals[0].read() == b"0123456789" * 2


def test_expect_line_reads_one_raw_line() -> None:
    receiver = Receiver()
    receiver.feed(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    first = receiver.next_event()
    assert isinstance(first, Command)
    assert first.name == "IDLE"
    receiver.expect_line()
    assert receiver.next_event() == RawLine(b"DONE")
    third = receiver.next_event()
    assert isinstance(third, Command)
    assert third.name == "NOOP"
    assert receiver.next_event() is NEED_DATA
    assert receiver.idle


def test_expect_line_too_long() -> None:
    receiver = Receiver(ReceiverLimits(max_line=10))
    receiver.expect_line()
    got = events(b"x" * 11 + b"\r\na NOOP\r\n", receiver)
    assert [summary(e)[:3] for e in got] == [("err", None, "BAD"), ("cmd", "a", "NOOP")]


def test_expect_line_too_long_in_pieces() -> None:
    receiver = Receiver(ReceiverLimits(max_line=10))
    receiver.expect_line()
    got = events(b"x" * 30 + b"\r\na NOOP\r\n", receiver, chunk=4)
    assert [summary(e)[:3] for e in got] == [("err", None, "BAD"), ("cmd", "a", "NOOP")]


def test_huge_line_is_not_buffered() -> None:
    """A client that never sends LF gets one BAD, and its octets are dropped as they come."""
    receiver = Receiver(ReceiverLimits(max_line=1000))
    got: list[Event] = []
    for _ in range(100):
        receiver.feed(b"a" * 1000)
        while (event := receiver.next_event()) is not NEED_DATA:
            got.append(event)
        assert receiver.buffered <= 1000
    assert [summary(e)[:3] for e in got] == [("err", None, "BAD")]
    got = events(b"\r\nb NOOP\r\n", receiver)
    assert [summary(e)[:3] for e in got] == [("cmd", "b", "NOOP")]


def test_continuation_only_once_per_sync_literal() -> None:
    receiver = Receiver()
    receiver.feed(b"a LOGIN {3}\r\n")
    assert receiver.next_event() == ContinuationRequest(3)
    assert receiver.next_event() is NEED_DATA
    receiver.feed(b"bob {2}\r\n")
    assert receiver.next_event() == ContinuationRequest(2)
    receiver.feed(b"pw\r\n")
    event = receiver.next_event()
    assert isinstance(event, Command)
    assert [lit.read() for lit in event.literals] == [b"bob", b"pw"]


def test_unparseable_non_sync_literal_is_fatal_not_injected() -> None:
    """A size too long to parse must not make its octets commands (CRLF injection): the
    receiver swallows them and tells the session to close."""
    got = events(b"a APPEND x {" + b"9" * 30 + b"+}\r\nb DELETE INBOX\r\n")
    assert len(got) == 1
    error = got[0]
    assert isinstance(error, ReceiverError)
    assert (error.tag, error.status, error.code, error.fatal) == ("a", "BAD", "TOOBIG", True)


def test_oversized_non_sync_literal_is_not_fatal() -> None:
    (error, command) = events(b"a APPEND x {6000+}\r\n" + b"q" * 6000 + b"\r\nb NOOP\r\n")
    assert isinstance(error, ReceiverError)
    assert not error.fatal
    assert isinstance(command, Command)


def test_buffered_commands_offers_whole_lines_between_commands_only() -> None:
    """The IMAP driver's fast lane answers queued lines itself: it is offered what is
    buffered only between commands, and what it consumes never reaches `next_event`."""
    receiver = Receiver()
    receiver.feed(b"a NOOP\r\nb UID FETCH 1 (BODY.PEEK[])\r\nc NOOP\r\n")
    first = receiver.next_event()
    assert isinstance(first, Command)
    assert first.tag == "a"
    queued = receiver.buffered_commands(1024)
    assert queued == b"b UID FETCH 1 (BODY.PEEK[])\r\nc NOOP\r\n"
    assert receiver.buffered_commands(5) == b"b UID"
    receiver.consume(len(b"b UID FETCH 1 (BODY.PEEK[])\r\n"))
    third = receiver.next_event()
    assert isinstance(third, Command)
    assert third.tag == "c"
    receiver.feed(b"d X {3+}\r\nabc (more")          # a command's line after its literal,
    assert receiver.next_event() is NEED_DATA          # not yet whole: nothing offered
    assert receiver.buffered_commands(1024) == b""
    receiver.feed(b")\r\n")
    fourth = receiver.next_event()
    assert isinstance(fourth, Command)
    assert fourth.args == b"{3+} (more)"
    receiver.expect_line()                              # a raw line is expected: nothing
    assert receiver.buffered_commands(1024) == b""
