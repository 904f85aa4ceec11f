"""How replies reach the socket: a multi-line reply (EHLO) is one write, not one per line."""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker
from appliance.smtp.session import MailsteadSMTP

HOSTNAME = "mx.example.test"


class RecordingTransport(asyncio.Transport):
    """Keeps every write separately (a real transport makes each a send() call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def get_write_buffer_size(self) -> int:
        return 0


class Handler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return replies.OK


async def writes_for(*commands: bytes) -> list[bytes]:
    protocol = MailsteadSMTP(Handler(), tracker=ConnectionTracker(10, 10),
                             line_length_limit=1000, data_timeout=60, timeout=60,
                             hostname=HOSTNAME)
    transport = RecordingTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    for _ in range(5):
        await asyncio.sleep(0)
    for command in commands:
        protocol.data_received(command)
        for _ in range(20):
            await asyncio.sleep(0)
    transport.close()
    await asyncio.sleep(0)
    return transport.writes


def test_the_ehlo_reply_is_written_at_once() -> None:
    greeting, ehlo, noop = asyncio.run(writes_for(b"EHLO client.example\r\n", b"NOOP\r\n"))
    assert greeting.startswith(b"220 ")
    lines = ehlo.split(b"\r\n")
    assert lines[0] == b"250-" + HOSTNAME.encode()
    assert all(line.startswith(b"250-") for line in lines[1:-2])
    assert lines[-2].startswith(b"250 ")
    assert lines[-1] == b""
    assert len(lines) >= 4          # at least two "250-" lines and the last
    assert noop == replies.OK.encode() + b"\r\n"


def test_single_line_replies_are_written_as_they_come() -> None:
    writes = asyncio.run(writes_for(b"HELO client.example\r\n", b"NOOP\r\n", b"RSET\r\n"))
    assert len(writes) == 4
    assert all(w.count(b"\r\n") == 1 for w in writes)
