"""Waking the queue runner when a message is queued, from any engine process.

The runner listens on a UNIX datagram socket in the queue directory; whoever queues a
message sends it one empty datagram. Lost datagrams cost nothing but latency: the runner
also looks at the queue on its own every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

WAKE_SOCKET = "wake.sock"


def wake_socket_path(queue_dir: Path) -> Path:
    return queue_dir / WAKE_SOCKET


def send_wake(path: Path) -> None:
    """Send one wake-up datagram; never blocks, never fails (nobody may be listening)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(b"", str(path))


class _WakeProtocol(asyncio.DatagramProtocol):
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._wake()


async def listen_for_wakes(path: Path, wake: Callable[[], None]) -> asyncio.DatagramTransport:
    """Bind the wake socket (replacing a stale one) and call `wake` for every datagram."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    # A bound socket handed over (not local_addr=path): uvloop takes only (host, port)
    # tuples as local_addr, the stock loop both.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _WakeProtocol(wake), sock=sock)
    return transport
