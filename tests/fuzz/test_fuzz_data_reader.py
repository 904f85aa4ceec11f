"""Fuzz the DATA reader and the BDAT body checks against a slow, obviously right model.

The model reads the whole stream at once, line by line; the reader gets it in random pieces.
Both must agree on every stream: where the end is, what is delivered, what is refused and
why, and which octets are left for the command reader.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.smtp.body_checks import BodyChecks, BodyError, BodyLimits
from appliance.smtp.data_reader import (
    NEED_DATA,
    TERMINATOR,
    DataReader,
    Event,
    MessageReceived,
    MessageRefused,
)

LIMITS = BodyLimits(max_size=300, max_line=24)
ORDER = list(BodyError)
# Streams made of the octets that matter, in runs, so ends and near-ends are common.
ATOMS = st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"\r\n.\r\n", b"\r\n.",
                         b"\x00", b"a", b"bc", b"x" * 23, b"y" * 30, b"\xff", b" "])
STREAMS = st.lists(ATOMS, max_size=60).map(b"".join) | st.binary(max_size=400)
FAST = settings(max_examples=600, deadline=None)


def model_errors(body: bytes, *, dot_stuffed: bool) -> set[BodyError]:
    """Every check `body` fails, judged from the whole body at once."""
    found: set[BodyError] = set()
    if len(body) > LIMITS.max_size:
        found.add(BodyError.TOO_BIG)
    if b"\x00" in body:
        found.add(BodyError.NUL)
    unpaired = body.replace(b"\r\n", b"")
    if dot_stuffed and (b"\r" in unpaired or b"\n" in unpaired):
        found.add(BodyError.BARE_LINE_END)
    for line in body.split(b"\n"):
        allowed = LIMITS.max_line + (dot_stuffed and line.startswith(b"."))
        if len(line) + 1 > allowed:          # the last piece too: BDAT checks it at the end
            found.add(BodyError.LINE_TOO_LONG)
    return found


def model(stream: bytes) -> tuple[Event, bytes]:
    """The event for `stream` after the 354, and the octets after the end of data."""
    whole = b"\r\n" + stream                 # the CRLF that ended the DATA command
    end = whole.find(TERMINATOR)
    if end < 0:
        return NEED_DATA, b""
    body = whole[2:end + 2]
    errors = model_errors(body, dot_stuffed=True)
    if errors:
        return MessageRefused(min(errors, key=ORDER.index)), whole[end + 5:]
    lines = body.split(b"\r\n")[:-1]
    content = b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n"
                       for line in lines)
    return MessageReceived(content), whole[end + 5:]


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def run_reader(pieces: list[bytes]) -> tuple[Event, bytes]:
    reader = DataReader(LIMITS)
    for index, piece in enumerate(pieces):
        reader.feed(piece)
        if reader.next_event() is not NEED_DATA:
            return reader.next_event(), reader.unused + b"".join(pieces[index + 1:])
    return reader.next_event(), b""


@FAST
@given(stream=STREAMS, cuts=st.lists(st.integers(0, 1000), max_size=20))
@example(stream=b".\r\n", cuts=[])
@example(stream=b"\r\n.\r\n", cuts=[1])
@example(stream=b"a\r\n.\r\n", cuts=[2, 3, 4])
@example(stream=b"\n.\r\n\r\n.\r\n", cuts=[1])
def test_reader_agrees_with_the_model(stream: bytes, cuts: list[int]) -> None:
    assert run_reader(pieces_of(stream, cuts)) == model(stream)


@FAST
@given(stream=STREAMS, cuts=st.lists(st.integers(0, 1000), max_size=20))
@example(stream=b"a" + b"x" * 23, cuts=[])
@example(stream=b"x" * 23, cuts=[5])
def test_body_checks_without_dot_stuffing_agree_with_the_model(
        stream: bytes, cuts: list[int]) -> None:
    """BDAT: no end marker, no bare CR/LF rule, and the last line is checked at the end."""
    checks = BodyChecks(LIMITS, dot_stuffed=False)
    for piece in pieces_of(stream, cuts):
        checks.add(piece)
    checks.finish()
    errors = model_errors(stream, dot_stuffed=False) if stream else set()
    assert checks.error == min(errors, key=ORDER.index, default=None)
    assert checks.content() == (b"" if errors else stream)
    assert checks.size == len(stream)
