"""Fuzz the IMAP command receiver: any octet stream in any pieces gives only our events, the
same events however it is cut, bounded buffering, and the receiver is back in step after
garbage (a following NOOP is always received)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

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

LIMITS = ReceiverLimits(max_line=40, max_tag=8, max_literal=50, max_literals=3,
                        max_command=120, max_non_sync_literal=10, spool_threshold=20)
TOKENS = st.sampled_from([
    b"\r\n", b"\n", b"\r", b" ", b"a1 ", b"b2 ", b"NOOP", b"LOGIN", b"APPEND x ", b"UID ",
    b"{0}", b"{5}", b"{12}", b"{60}", b"{3+}", b"{11+}", b"{60+}", b"~{4}", b"~{2+}",
    b"{", b"}", b"+", b"~", b'"', b"\\", b"(", b")", b"*", b"\x00", b"\xff", b"x" * 30,
    b"9", b"{99999999999999999999999}", b"{99999999999999999999999+}",
])
STREAM = st.lists(TOKENS | st.binary(max_size=8), max_size=40).map(b"".join)
# Padding that ends any state the stream can leave: at most 60 octets of literal data or
# skipped literal, then the line it belongs to. It holds no "{", so starts no new literal.
PADDING = b"\r\n" * 40
NOOP = b"z9 NOOP\r\n"


def run(receiver: Receiver, pieces: list[bytes]) -> list[Event]:
    out: list[Event] = []
    for piece in pieces:
        receiver.feed(piece)
        while (event := receiver.next_event()) is not NEED_DATA:
            assert isinstance(event, Command | ContinuationRequest | RawLine | ReceiverError)
            out.append(event)
        assert receiver.buffered <= LIMITS.max_line + len(piece) + 2
    return out


def comparable(event: Event) -> object:
    if isinstance(event, Command):
        return (event.tag, event.name, event.args, [lit.read() for lit in event.literals])
    if isinstance(event, ReceiverError):
        # `discard` depends on whether the whole line was seen at once.
        return (event.tag, event.status, event.code)
    return event


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=400, deadline=None)
@given(STREAM, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
@example(b"a1 LOGIN {60+}\r\n", [3])
@example(b"a1 X " + b"x" * 50 + b"{3+}\r\nabc", [1, 2, 40])
def test_any_cut_same_events_and_resync(stream: bytes, cuts: list[int]) -> None:
    data = stream + PADDING + NOOP
    whole = run(Receiver(LIMITS), [data])
    pieces = run(Receiver(LIMITS), split(data, cuts))
    assert [comparable(e) for e in whole] == [comparable(e) for e in pieces]
    if any(isinstance(e, ReceiverError) and e.fatal for e in whole):
        # a literal too long to skip: everything after it is swallowed, never a command
        fatal = next(i for i, e in enumerate(whole) if isinstance(e, ReceiverError) and e.fatal)
        assert fatal == len(whole) - 1
        return
    last = whole[-1]
    assert isinstance(last, Command)
    assert (last.tag, last.name) == ("z9", "NOOP")


@settings(max_examples=300, deadline=None)
@given(STREAM)
def test_errors_say_what_to_answer(stream: bytes) -> None:
    for event in run(Receiver(LIMITS), [stream + PADDING + NOOP]):
        if isinstance(event, ReceiverError):
            assert event.status in ("BAD", "NO")
            assert event.text.isascii()
            assert event.code in (None, "TOOBIG")
            assert event.discard >= 0
            assert event.tag is None or (event.tag.isascii() and " " not in event.tag)
        elif isinstance(event, Command):
            assert event.name.isupper() or not event.name.isalpha()
            assert len(event.literals) <= LIMITS.max_literals
            assert sum(lit.size for lit in event.literals) <= LIMITS.max_command
            assert all(lit.size <= LIMITS.max_literal for lit in event.literals)


@settings(max_examples=200, deadline=None)
@given(st.lists(STREAM, min_size=1, max_size=5))
def test_raw_lines_between_commands(streams: list[bytes]) -> None:
    """expect_line at any moment (IDLE, AUTHENTICATE) never breaks the framing."""
    receiver = Receiver(LIMITS)
    for stream in streams:
        receiver.expect_line()
        if any(isinstance(e, ReceiverError) and e.fatal for e in run(receiver, [stream + PADDING])):
            return
    last = run(receiver, [NOOP])[-1]
    assert isinstance(last, Command)
    assert last.name == "NOOP"
