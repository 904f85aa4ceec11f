"""The connection base the IMAP and POP3 drivers share (`appliance.net.stream`), over real
loopback sockets: admission and refusal, buffered reads with paused reading, EOF and
timeouts, the write gate that drops a client who stops reading, closing with a goodbye."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest

from appliance.net.stream import StreamConnection, is_loopback, listen
from appliance.smtp import replies as smtp_replies
from appliance.smtp.connections import ConnectionTracker

GOODBYE = b"BYE closing\r\n"


class Probe(StreamConnection):
    """A connection whose session is a test coroutine given the connection."""

    max_unread = 1024
    log_name = "probe"

    def __init__(self, tracker: ConnectionTracker,
                 session: Callable[[Probe], Awaitable[None]]) -> None:
        super().__init__(tracker, ssl.create_default_context())
        self.session = session
        self.goodbyes: list[str] = []

    def goodbye(self, smtp_reply: str) -> bytes:
        self.goodbyes.append(smtp_reply)
        return GOODBYE

    async def serve(self) -> None:
        try:
            await self.session(self)
        finally:
            self.close_transport()


async def _serve(session: Callable[[Probe], Awaitable[None]],
                 client: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                  Awaitable[None]],
                 tracker: ConnectionTracker | None = None) -> list[Probe]:
    """Run one client against a listener whose connections run `session`."""
    tracker = tracker or ConnectionTracker(10, 10)
    made: list[Probe] = []

    def factory() -> Probe:
        made.append(Probe(tracker, session))
        return made[-1]

    listener = await listen("probe", factory, "127.0.0.1", 0, tracker, None)
    port = listener.server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(client(reader, writer), 10)
    finally:
        writer.close()
        listener.server.close()
        await listener.server.wait_closed()
    return made


@pytest.mark.parametrize(("ip", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("2001:db8::1", False),
    ("unknown", False), ("", False),
])
def test_is_loopback(ip: str, loopback: bool) -> None:
    assert is_loopback(ip) is loopback


def test_a_refused_client_gets_the_goodbye_and_is_closed() -> None:
    async def session(conn: Probe) -> None:
        raise AssertionError("a refused connection must not be served")

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.read() == GOODBYE        # then EOF

    made = asyncio.run(_serve(session, client, ConnectionTracker(0, 10)))
    assert made[0].goodbyes == [smtp_replies.TOO_MANY_CONNECTIONS]
    assert made[0].client_ip == "127.0.0.1"


def test_reading_pauses_above_max_unread_and_resumes_when_taken() -> None:
    reading: list[bool] = []
    sizes: list[int] = []

    async def session(conn: Probe) -> None:
        transport = conn._transport
        assert transport is not None
        while conn._unread_size <= Probe.max_unread:
            await asyncio.sleep(0.01)
        reading.append(transport.is_reading())
        sizes.append(len(await conn.read_input(5) or b""))
        reading.append(transport.is_reading())
        while (more := await conn.read_input(5)) is not None:     # None at EOF
            sizes.append(len(more))

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 3000)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b"y" * 10)
        writer.write_eof()
        await reader.read()

    asyncio.run(_serve(session, client))
    assert reading == [False, True]          # paused while 3000 octets waited, then resumed
    assert sizes[0] > Probe.max_unread
    assert sum(sizes) == 3010


def test_read_input_times_out_then_reads_on() -> None:
    outcome: list[object] = []

    async def session(conn: Probe) -> None:
        for timeout in (0.1, -1.0):
            with pytest.raises(TimeoutError):
                await conn.read_input(timeout)
        outcome.append("timed out")
        outcome.append(await conn.read_input(5))
        outcome.append(await conn.read_input(5))

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        writer.write(b"hi\r\n")
        writer.write_eof()
        assert await reader.read() == b""

    asyncio.run(_serve(session, client))
    assert outcome == ["timed out", b"hi\r\n", None]


def test_a_client_that_stops_reading_is_dropped_after_the_timeout() -> None:
    outcome: list[object] = []
    written: list[int] = []
    received: list[int] = []

    async def session(conn: Probe) -> None:
        while (transport := await conn.drained(0.3)) is not None:
            transport.write(b"z" * 65536)
            written.append(65536)
        outcome.extend([conn.closed, transport])

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1.0)                      # never reads until it is dropped
        try:
            while data := await reader.read(1 << 20):
                received.append(len(data))
        except ConnectionError:
            pass

    made = asyncio.run(_serve(session, client))
    assert outcome == [True, None]
    assert sum(received) < sum(written)               # the unsent output was dropped
    assert made[0].goodbyes == []


def test_close_transport_says_goodbye_only_between_commands() -> None:
    heard: list[bytes] = []

    async def between(conn: Probe) -> None:
        conn.close_transport(smtp_replies.SHUTTING_DOWN)

    async def busy(conn: Probe) -> None:
        conn.busy = True
        assert conn.in_transaction
        conn.close_transport(smtp_replies.SHUTTING_DOWN)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.append(await reader.read())

    asyncio.run(_serve(between, client))
    asyncio.run(_serve(busy, client))
    assert heard == [GOODBYE, b""]


def test_connection_lost_releases_the_tracker() -> None:
    tracker = ConnectionTracker(10, 10)

    async def session(conn: Probe) -> None:
        assert tracker.live == 1
        assert await conn.read_input(5) is None       # the client closed

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await asyncio.sleep(0.3)

    asyncio.run(_serve(session, client, tracker))
    assert tracker.live == 0
