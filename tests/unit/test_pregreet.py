"""The early-talker check with no greeting delay at all, on a fake transport (no sockets).

Even at 0 ms, octets that arrived before the greeting is written are caught: the check runs
right before the 220, and nothing can arrive between the check and the write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker
from appliance.smtp.session import MailsteadSMTP

HOSTNAME = "mx.example.test"


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; closing calls connection_lost like a real one."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

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


async def converse(early: bytes, *, refuse: bool = True) -> tuple[bytes, bool]:
    tracker = ConnectionTracker(10, 10)
    protocol = MailsteadSMTP(Handler(), tracker=tracker, line_length_limit=1000,
                             data_timeout=60, timeout=60, hostname=HOSTNAME,
                             greeting_delay=0.0, refuse_early_talkers=refuse)
    transport = FakeTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    if early:
        protocol.data_received(early)       # before the handler task ever ran
    for _ in range(20):
        await asyncio.sleep(0)
    if not transport.closed:
        transport.close()
    await asyncio.sleep(0)
    return transport.written, tracker.live == 0


def test_early_octets_are_caught_even_without_a_delay() -> None:
    written, released = asyncio.run(converse(b"EHLO bot\r\n"))
    assert written == replies.EARLY_TALKER.format(hostname=HOSTNAME).encode() + b"\r\n"
    assert released


def test_a_client_that_waits_is_greeted() -> None:
    written, released = asyncio.run(converse(b""))
    assert written.startswith(b"220 " + HOSTNAME.encode())
    assert released


def test_listeners_that_do_not_refuse_early_talkers_greet_them() -> None:
    written, _ = asyncio.run(converse(b"EHLO bot\r\n", refuse=False))
    assert written.startswith(b"220 ")
