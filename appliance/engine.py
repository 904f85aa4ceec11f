"""mailstead-engine: assembles the listeners from the settings and runs them until a signal.

Start-up opens (and migrates) mailstead.db, loads the TLS certificate, and binds the MX
and the two submission listeners. SIGTERM or SIGINT stops accepting, gives live sessions
`limits.shutdown_grace` seconds to finish, then closes the rest with a 421 so clients retry
later. SIGUSR1 or the control op `engine.restart` stops it the same way and then makes
`run_engine` return True: the caller re-executes the process (engine_restart.py).

Processes (`engine.workers`, workers.py): one engine process, or N worker processes under
a supervisor. Exactly one process, the primary (slot 0), runs what must exist once: the
queue runner with its spool recovery, the control socket, the submission, POP3 and IMAP
listeners (their login guard counts failures in memory) and the stale-file sweep; it also
runs an MX listener. Slots 1..N-1 run only an MX listener, sharing the port with
SO_REUSEPORT: the MX is where the CPU goes (parsing, checks), and MX sessions share nothing
but the database and the spool, which are safe across processes. They start only after
the primary's spool recovery, which must not race with other processes queueing.
Connection limits (`limits.max_connections*`) count per process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from appliance.auth.guard import LoginGuard
from appliance.checks.pipeline import build_checks
from appliance.checks.ratelimit_clients import ClientRateLimits
from appliance.control.engine_ops import ENGINE_OPS, EngineOps
from appliance.core import gcpolicy, log
from appliance.engine_restart import RESTART_SIGNAL
from appliance.imap.server import start_imap
from appliance.outbound.service import (
    QueueService,
    build_deliverer,
    space_guard,
    start_queue_runner,
)
from appliance.pipeline.vacation import attach_vacation
from appliance.pop3.server import build_backend as build_pop3_backend
from appliance.pop3.server import build_stores, start_pop3
from appliance.reports.intake import attach_intake
from appliance.reports.sender import run_daily as send_dmarc_reports_daily
from appliance.settings import Settings
from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker, Listener
from appliance.smtp.handler import MxHandler
from appliance.smtp.session import MailsteadSMTP
from appliance.smtp.submission_server import build_login_guard, start_submission
from appliance.spam.junk_trainer import start_junk_trainer
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import sweep_stale_temps
from appliance.tls.contexts import server_context

DELIVERY_THREADS = 32   # fsyncs wait on the disk, not the CPU: let many run at once
SUPERVISOR_CHECK = 1.0  # seconds between checks that the supervisor is still there


@dataclass(frozen=True)
class Role:
    """What one engine process runs (see the module docstring)."""

    primary: bool = True        # queue runner, control socket, submission listeners, sweep
    reuse_port: bool = False    # the MX port is shared with other worker processes
    orphan_grace: float = 0.0   # spool recovery spares files this young (others may queue)
    ready: Callable[[], None] | None = None   # told once every listener accepts
    supervisor: int | None = None   # the parent process: stop when it is gone
    slot: int = 0


SINGLE_PROCESS = Role()


@dataclass
class _Stop:
    """When the engine stops, and whether to restart afterwards (engine_restart.py)."""

    event: asyncio.Event
    loop: asyncio.AbstractEventLoop
    supervisor: int | None
    restart: bool = False

    def request_restart(self) -> None:
        """Ask for a graceful restart; safe from any thread, returns at once."""
        if self.supervisor is not None:     # it stops every worker, then re-executes
            os.kill(self.supervisor, RESTART_SIGNAL)
            return
        self.loop.call_soon_threadsafe(self._restart)

    def terminate(self) -> None:
        """SIGTERM or SIGINT: stop, and stay stopped even if a restart was under way."""
        self.restart = False
        self.event.set()

    def _restart(self) -> None:
        if self.event.is_set():     # already stopping: a restart now is not asked for
            return
        log.event("engine.restart_requested")
        self.restart = True
        self.event.set()


@dataclass
class _Running:
    """What one engine process started, to be stopped in order."""

    listeners: list[Listener]
    queue: QueueService | None = None
    guard: LoginGuard | None = None
    tasks: list[asyncio.Future[object]] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)   # after the listeners

    async def stop(self, grace: float) -> None:
        await shutdown(self.listeners, grace)
        if self.queue is not None:
            await self.queue.stop(grace)
        if self.guard is not None:
            self.guard.close()
        for close in self.closers:
            close()


async def start_mx(settings: Settings, executor: ThreadPoolExecutor,
                   reuse_port: bool = False) -> Listener:
    """Bind the SMTP MX listener (with `reuse_port`, beside other workers' on one port)."""
    data_dir = settings.data_dir
    directory = SqliteDirectory(open_database(data_dir))
    tls = server_context(settings.data_path("tls.cert_file"), settings.data_path("tls.key_file"))
    hostname = settings.get_str("server.hostname")
    rates = ClientRateLimits.from_settings(settings)    # per process, like the tracker
    deliverer = attach_intake(settings, build_deliverer(settings, executor), executor)
    deliverer = attach_vacation(settings, deliverer, executor, directory)
    handler = MxHandler(directory, deliverer, hostname,
                        settings.get_int("limits.max_recipients"), space_guard(settings),
                        checks=build_checks(settings), rates=rates)
    tracker = ConnectionTracker(settings.get_int("limits.max_connections"),
                                settings.get_int("limits.max_connections_per_ip"), rates)

    def factory() -> MailsteadSMTP:
        return MailsteadSMTP(
            handler, tracker=tracker,
            line_length_limit=settings.get_int("limits.max_line_length"),
            data_timeout=settings.get_int("limits.data_timeout"),
            data_size_limit=settings.get_int("limits.max_message_size"),
            timeout=settings.get_int("limits.idle_timeout"),
            greeting_delay=settings.get_int("limits.greeting_delay_ms") / 1000,
            refuse_early_talkers=True,
            enable_SMTPUTF8=True, hostname=hostname, tls_context=tls)

    loop = asyncio.get_running_loop()
    address, port = settings.get_str("listen.address"), settings.get_int("listen.smtp_port")
    server = await loop.create_server(factory, host=address, port=port, reuse_address=True,
                                      reuse_port=reuse_port or None, backlog=512)
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


async def run_engine(settings: Settings, role: Role = SINGLE_PROCESS) -> bool:
    """Run the engine, or one worker process of it, until SIGTERM or SIGINT (False) or a
    restart request (True: the caller re-executes, see engine_restart.py)."""
    loop = asyncio.get_running_loop()
    stop = _Stop(asyncio.Event(), loop, role.supervisor)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.terminate)
    loop.add_signal_handler(RESTART_SIGNAL, stop.request_restart)
    with ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="deliver") as executor:
        if role.primary:
            running = await _start_primary(settings, executor, role, stop)
        else:
            running = _Running([await start_mx(settings, executor, role.reuse_port)])
        if role.supervisor is not None:
            running.tasks.append(asyncio.ensure_future(_watch(role.supervisor, stop.event)))
        gcpolicy.apply()        # start-up is done: freeze it, raise the thresholds
        log.event("engine.ready", hostname=settings.get_str("server.hostname"), slot=role.slot)
        if role.ready is not None:
            role.ready()
        await stop.event.wait()
        log.event("engine.stopping", sessions=sum(x.tracker.live for x in running.listeners),
                  restart=stop.restart)
        await running.stop(settings.get_int("limits.shutdown_grace"))
    log.event("engine.stopped")
    return stop.restart


async def _start_primary(settings: Settings, executor: ThreadPoolExecutor,
                         role: Role, stop: _Stop) -> _Running:
    """The queue runner first (its recovery must precede any listener), then listeners."""
    queue = await start_queue_runner(settings, executor, orphan_grace=role.orphan_grace)
    queue.control.add_ops(ENGINE_OPS, EngineOps(settings, stop.request_restart))
    guard = build_login_guard(settings)
    tls = server_context(settings.data_path("tls.cert_file"),
                         settings.data_path("tls.key_file"))
    stores = build_stores(settings)
    stop_trainer = start_junk_trainer(settings, stores)   # learns from IMAP Junk moves
    pop3 = build_pop3_backend(settings, executor, guard, stores)
    listeners = [await start_mx(settings, executor, role.reuse_port),
                 *await start_submission(settings, executor, guard, tls),
                 *await start_pop3(settings, pop3, tls),
                 *await start_imap(settings, executor, guard, stores, tls)]
    loop = asyncio.get_running_loop()
    sweep = loop.run_in_executor(executor, sweep_stale_temps, settings.data_dir / "mail")
    sweep.add_done_callback(_log_sweep)
    closers: list[Callable[[], None]] = [stop_trainer, stores.close]
    if settings.get_bool("reports.send_aggregate"):    # our DMARC reports, once a day
        reports = loop.create_task(send_dmarc_reports_daily(
            settings, build_deliverer(settings, executor)))
        closers.append(functools.partial(_cancel, reports))
    return _Running(listeners, queue, guard, closers=closers)


async def _watch(supervisor: int, stop: asyncio.Event) -> None:
    """Stop when the supervisor is gone (killed): this process was handed to another parent."""
    while os.getppid() == supervisor:
        await asyncio.sleep(SUPERVISOR_CHECK)
    log.event("engine.supervisor_lost", supervisor=supervisor)
    stop.set()


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


def _log_sweep(done: asyncio.Future[int]) -> None:
    if done.exception() is not None:
        log.error("maildir.sweep_failed", done.exception())
    else:
        log.event("maildir.swept", stale_temp_files=done.result())
