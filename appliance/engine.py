"""mailstead-engine: assembles the listeners from the settings and runs them until a signal.

Start-up opens (and migrates) mailstead.db, loads the TLS certificate, and binds the MX
listener. SIGTERM or SIGINT stops accepting, gives live sessions `limits.shutdown_grace`
seconds to finish, then closes the rest with a 421 so clients retry later.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from appliance.core import log
from appliance.settings import Settings
from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker
from appliance.smtp.handler import MxHandler
from appliance.smtp.session import MailsteadSMTP
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import MaildirStore, sweep_stale_temps
from appliance.tls.contexts import server_context

DELIVERY_THREADS = 32   # fsyncs wait on the disk, not the CPU: let many run at once


@dataclass
class Listener:
    """One bound server and the sessions it accepted."""

    name: str
    server: asyncio.Server
    tracker: ConnectionTracker


async def start_mx(settings: Settings, executor: ThreadPoolExecutor) -> Listener:
    """Bind the SMTP MX listener."""
    data_dir = settings.data_dir
    directory = SqliteDirectory(open_database(data_dir))
    tls = server_context(settings.data_path("tls.cert_file"), settings.data_path("tls.key_file"))
    hostname = settings.get_str("server.hostname")
    handler = MxHandler(directory, MaildirStore(data_dir), executor, hostname,
                        settings.get_int("limits.max_recipients"))
    tracker = ConnectionTracker(settings.get_int("limits.max_connections"),
                                settings.get_int("limits.max_connections_per_ip"))

    def factory() -> MailsteadSMTP:
        return MailsteadSMTP(
            handler, tracker=tracker,
            line_length_limit=settings.get_int("limits.max_line_length"),
            data_timeout=settings.get_int("limits.data_timeout"),
            data_size_limit=settings.get_int("limits.max_message_size"),
            timeout=settings.get_int("limits.idle_timeout"),
            enable_SMTPUTF8=True, hostname=hostname, tls_context=tls)

    loop = asyncio.get_running_loop()
    address, port = settings.get_str("listen.address"), settings.get_int("listen.smtp_port")
    server = await loop.create_server(factory, host=address, port=port, reuse_address=True,
                                      backlog=512)
    log.event("listener.started", listener="smtp", address=address, port=port)
    return Listener("smtp", server, tracker)


async def shutdown(listeners: list[Listener], grace: float) -> None:
    """Stop accepting, close idle sessions, give transactions `grace` seconds, close the rest."""
    for listener in listeners:
        listener.tracker.closing = True
        listener.server.close()
        listener.tracker.close_all(replies.SHUTTING_DOWN, idle_only=True)
    deadline = asyncio.get_running_loop().time() + grace
    while any(listener.tracker.busy for listener in listeners):
        if asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.05)
    for listener in listeners:
        listener.tracker.close_all(replies.SHUTTING_DOWN)
        await listener.server.wait_closed()


async def run_engine(settings: Settings) -> None:
    """Run the engine until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="deliver") as executor:
        listeners = [await start_mx(settings, executor)]
        sweep = loop.run_in_executor(executor, sweep_stale_temps, settings.data_dir / "mail")
        sweep.add_done_callback(_log_sweep)
        log.event("engine.ready", hostname=settings.get_str("server.hostname"))
        await stop.wait()
        log.event("engine.stopping", sessions=sum(x.tracker.live for x in listeners))
        await shutdown(listeners, settings.get_int("limits.shutdown_grace"))
    log.event("engine.stopped")


def _log_sweep(done: asyncio.Future[int]) -> None:
    if done.exception() is not None:
        log.error("maildir.sweep_failed", done.exception())
    else:
        log.event("maildir.swept", stale_temp_files=done.result())
