"""The POP3 driver in this process on a real socket, with timers too short for an engine
test: a client that stops reading in the middle of a large RETR is cut off after the idle
time, its slot and its maildrop lock are given back, and nothing is deleted."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from appliance import datadir
from appliance.pop3 import replies
from appliance.pop3.actions import MaildropAnswer, OpenMaildrop
from appliance.pop3.server import ListenerConfig, Pop3Connection, build_backend, build_stores
from appliance.pop3.state import Limits
from appliance.settings import Settings, load_settings
from appliance.smtp.connections import ConnectionTracker
from appliance.smtp.submission_server import build_login_guard
from appliance.tls.contexts import server_context
from harness.engine import EngineProcess
from harness.pop3 import PASSWORD, put_message

ADDRESS = "alice@example.test"
LARGE = b"Subject: large\r\n\r\n" + b"".join(b"%07d " % n + b"y" * 90 + b"\r\n"
                                              for n in range(100_000))     # ~10 MB


def test_client_that_stops_reading_is_cut_off_and_releases_the_lock(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", auth__failure_delay_ms=0)
    engine.add_domain("example.test")
    engine.add_account(ADDRESS)
    put_message(engine.maildir(ADDRESS), LARGE)
    settings = load_settings(engine.config_file, environ={})
    datadir.prepare(settings)
    asyncio.run(_stalled_retr(settings))
    assert len(engine.messages(ADDRESS)) == 1


async def _stalled_retr(settings: Settings) -> None:
    guard, stores = build_login_guard(settings), build_stores(settings)
    tracker = ConnectionTracker(10, 10)
    with ThreadPoolExecutor(4) as executor:
        backend = build_backend(settings, executor, guard, stores)
        config = ListenerConfig(
            backend, tracker, server_context(settings.data_path("tls.cert_file"),
                                             settings.data_path("tls.key_file")),
            implicit_tls=False, dev_mode=True, limits=Limits(), login_timeout=1,
            idle_timeout=1)
        server = await asyncio.get_running_loop().create_server(
            lambda: Pop3Connection(config), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        writer = await _client_stops_reading(port)
        try:
            for _ in range(100):                 # the idle timer is 1 s
                if tracker.live == 0:
                    break
                await asyncio.sleep(0.05)
            assert tracker.live == 0, "the stalled session was not cut off"
            answer = await backend.session("127.0.0.1").perform(OpenMaildrop(ADDRESS))
            assert isinstance(answer, MaildropAnswer)
            assert answer.snapshot is not None, answer.problem   # the lock was released
        finally:
            writer.close()
            server.close()
            await server.wait_closed()
            guard.close()
            stores.close()


async def _client_stops_reading(port: int) -> asyncio.StreamWriter:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    assert (await reader.readline()).decode().rstrip() == replies.GREETING
    writer.write(f"USER {ADDRESS}\r\nPASS {PASSWORD}\r\n".encode())
    assert (await reader.readline()).decode().rstrip() == replies.USER_OK
    assert (await reader.readline()).startswith(b"+OK Logged in")
    writer.write(b"RETR 1\r\nDELE 1\r\nQUIT\r\n")
    return writer          # which reads nothing more (its stream buffers 128 KiB, then stops)
