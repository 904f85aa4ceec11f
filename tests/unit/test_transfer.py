"""The DATA and BDAT drivers on a real asyncio.StreamReader (no sockets).

`receive_data` must stop exactly at the end of data, however the octets arrive and however
small the reader's buffer limit, so that pipelined commands after it stay in the reader;
`receive_chunk` must take exactly the chunk.
"""

from __future__ import annotations

import asyncio

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.smtp.body_checks import BodyLimits
from appliance.smtp.data_reader import NEED_DATA, TERMINATOR, DataReader
from appliance.smtp.transfer import receive_chunk, receive_data

LIMITS = BodyLimits(max_size=10_000, max_line=100)
PARTS = st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"a", b"line of text", b"\x00",
                         b"\r\n.\r\n", b"\r\n.", b".\r\n", b"x" * 150])
BODIES = st.lists(PARTS, max_size=40).map(b"".join)
AFTER = b"NOOP\r\nQUIT\r\n"


async def feed_slowly(reader: asyncio.StreamReader, data: bytes, cuts: list[int]) -> None:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        reader.feed_data(data[start:end])
        await asyncio.sleep(0)


def expected_event(stream: bytes) -> object:
    parser = DataReader(LIMITS)
    parser.feed(stream)
    return parser.next_event()


@settings(max_examples=300, deadline=None)
@given(body=BODIES, cuts=st.lists(st.integers(0, 5000), max_size=10),
       limit=st.sampled_from([8, 16, 100, 64 * 1024]))
@example(body=b"", cuts=[], limit=8)
@example(body=b"a\r\n", cuts=[1, 2, 3, 4], limit=8)
def test_receive_data_stops_exactly_at_the_end(body: bytes, cuts: list[int],
                                               limit: int) -> None:
    stream = body + TERMINATOR[2:] if body.endswith(b"\r\n") or not body else (
        body + TERMINATOR)
    if expected_event(stream) is NEED_DATA:
        return                                  # the body hides no end: nothing to check
    end = (b"\r\n" + stream).find(TERMINATOR) + len(TERMINATOR) - 2
    whole = stream + AFTER

    async def run() -> tuple[object, bytes]:
        reader = asyncio.StreamReader(limit=limit)
        feeding = asyncio.ensure_future(feed_slowly(reader, whole, cuts))
        event = await receive_data(reader, DataReader(LIMITS))
        await feeding
        reader.feed_eof()
        return event, await reader.read()

    event, left = asyncio.run(run())
    assert event == expected_event(stream)
    assert left == whole[end:]


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 3000), cuts=st.lists(st.integers(0, 5000), max_size=10))
def test_receive_chunk_takes_exactly_the_chunk(size: int, cuts: list[int]) -> None:
    data = bytes(range(256)) * 12

    async def run() -> tuple[bytes, bytes]:
        reader = asyncio.StreamReader(limit=16)
        taken: list[bytes] = []
        feeding = asyncio.ensure_future(feed_slowly(reader, data[:size] + AFTER, cuts))
        await receive_chunk(reader, size, taken.append)
        await feeding
        reader.feed_eof()
        return b"".join(taken), await reader.read()

    taken, left = asyncio.run(run())
    assert taken == data[:size]
    assert left == AFTER
