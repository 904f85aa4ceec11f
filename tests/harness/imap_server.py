"""The IMAP listeners started inside the test process (real sockets, login guard and Maildir
store) on an event loop in a background thread, so that tests can shorten timers below what
the settings allow and watch the server's own log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from appliance import datadir
from appliance.engine import shutdown
from appliance.imap.server import bind
from appliance.imap.server_config import ImapListenerConfig, listener_config
from appliance.pop3.server import build_stores
from appliance.settings import load_settings
from appliance.smtp.connections import Listener
from appliance.smtp.submission_server import build_login_guard
from appliance.tls.contexts import server_context
from harness.engine import EngineProcess, free_port
from harness.imap import ImapWire

T = TypeVar("T")
ADDRESS = "dora@example.test"
AUTOLOGOUT = 1.0


class InProcessImap:
    """Both IMAP listeners on an event loop in a background thread, with short timers."""

    def __init__(self, data_dir: Path, autologout: float = AUTOLOGOUT,
                 fast_lane: bool = True) -> None:
        # EngineProcess only writes the settings file and reaches the directory here.
        self.engine = EngineProcess(data_dir, auth__failure_delay_ms=0)
        settings = load_settings(self.engine.config_file, environ={})
        datadir.prepare(settings)
        self.engine.add_domain("example.test")
        self.engine.add_account(ADDRESS)
        self.executor = ThreadPoolExecutor(8)
        self.stores = build_stores(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.guard = guard = build_login_guard(settings)
        tls = server_context(settings.data_path("tls.cert_file"),
                             settings.data_path("tls.key_file"))
        config = listener_config(settings, self.executor, guard, self.stores, tls)
        self.config: ImapListenerConfig = dataclasses.replace(
            config, autologout=autologout, login_timeout=autologout, fast_lane=fast_lane,
            session=dataclasses.replace(config.session, idle_poll=0.05))
        self.listeners: list[Listener] = self.call(
            bind(self.config, "127.0.0.1", self.imap_port, self.imaps_port))

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def connect(self, rcvbuf: int | None = None) -> ImapWire:
        wire = ImapWire(self.imap_port, rcvbuf=rcvbuf)  # dev mode: LOGIN on loopback, no TLS
        assert wire.read_line() is not None
        reply = wire.command("L", f'LOGIN {ADDRESS} "correct horse battery"')
        assert reply[-1].startswith(b"L OK"), reply
        return wire

    def stop(self, grace: float = 0.0) -> None:
        self.call(shutdown(self.listeners, grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.guard.close()
        self.stores.close()
        self.executor.shutdown()


@contextlib.contextmanager
def serving(data_dir: Path, **options: Any) -> Iterator[InProcessImap]:
    """An InProcessImap for the length of a `with` (a test's fixture), stopped at the end
    unless the test stopped it."""
    running = InProcessImap(data_dir, **options)
    try:
        yield running
    finally:
        if running.loop.is_running():
            running.stop()
