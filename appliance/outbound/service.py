"""Wiring of the outbound side for the engine: the Deliverer every listener uses, and the one
queue runner (with the control socket) that must run in exactly one process.

Engine processes that accept mail call `build_deliverer`; exactly one process calls
`start_queue_runner` (before its listeners accept mail, so that spool recovery cannot take a
file another process is about to commit) and `QueueService.stop` at shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from concurrent.futures import Executor
from dataclasses import dataclass

from appliance.control.queue_ops import QueueOps
from appliance.control.server import SOCKET_NAME, ControlServer
from appliance.core import log
from appliance.core.sizes import parse_space
from appliance.dkim.signer import DkimSigner
from appliance.outbound import transport
from appliance.outbound.connections import SessionPool
from appliance.outbound.dnscache import make_dns_cache
from appliance.outbound.reports import Reporter
from appliance.outbound.runner import QueueRunner, RunnerLimits, Transport
from appliance.outbound.scheduler import RetryPolicy
from appliance.outbound.spool import QUEUE_DIR, Spool
from appliance.outbound.wake import listen_for_wakes, wake_socket_path
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.local_deliverer import local_deliverer
from appliance.pipeline.space import SpaceGuard
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Directory


def space_guard(settings: Settings) -> SpaceGuard:
    """The free-space floor of the data directory (`limits.min_free_space`)."""
    return SpaceGuard(settings.data_dir, parse_space(settings.get_str("limits.min_free_space")))


def open_spool(settings: Settings) -> Spool:
    return Spool(settings.data_dir / QUEUE_DIR)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        first_retry=settings.get_int("queue.first_retry"),
        max_retry=settings.get_int("queue.max_retry"),
        max_age=settings.get_int("queue.max_age"),
        delay_warning=settings.get_int("queue.delay_warning"))


def build_deliverer(settings: Settings, executor: Executor,
                    directory: Directory | None = None) -> Deliverer:
    """A Deliverer for one process: Maildirs, the spool, the floor, a wake-up for the runner,
    and `delivered` reports for local recipients that ask for NOTIFY=SUCCESS.

    Each process that accepts mail makes its own (its own SQLite connection and group
    commit); the runner, wherever it runs, is woken through a datagram socket.
    """
    deliverer = local_deliverer(settings.data_dir, executor,
                                settings.get_int("limits.max_messages_per_account"),
                                space_guard(settings).check)
    if directory is None:
        directory = SqliteDirectory(open_database(settings.data_dir))
    deliverer.on_local_success = _reporter(settings, deliverer, directory).local_success
    return deliverer


def _reporter(settings: Settings, deliverer: Deliverer, directory: Directory) -> Reporter:
    return Reporter(deliverer, directory, settings.get_str("server.hostname"),
                    settings.get_int("queue.bounce_max_size"))


def session_pool(settings: Settings) -> SessionPool:
    """Connection reuse per destination, as the `outbound.session_*` settings say."""
    return SessionPool(idle_timeout=settings.get_int("outbound.session_idle_timeout"),
                       max_uses=settings.get_int("outbound.session_max_messages"),
                       max_idle=settings.get_int("outbound.session_max_idle"))


def real_transport(settings: Settings, pool: SessionPool | None = None) -> Transport:
    """`outbound.transport.deliver` bound to the `outbound.*` settings, a DNS cache and
    (when given) `pool` for connection reuse."""
    config = dataclasses.replace(transport.TransportConfig.from_settings(settings),
                                 pool=pool, dns_cache=make_dns_cache())
    return functools.partial(transport.deliver, config=config)


@dataclass
class QueueService:
    """The running queue runner, its wake-up socket and the control socket."""

    runner: QueueRunner
    task: asyncio.Task[None]
    control: ControlServer
    wake: asyncio.DatagramTransport | None
    spool: Spool
    pool: SessionPool | None = None

    async def stop(self, grace: float) -> None:
        """Close the sockets, let attempts finish for `grace` seconds, stop the runner,
        QUIT the idle outbound sessions."""
        await self.control.close()
        if self.wake is not None:
            self.wake.close()
        await self.runner.stop(grace)
        await self.task
        if self.pool is not None:
            await self.pool.close()
        self.spool.close()
        log.event("queue.stopped")


async def start_queue_runner(settings: Settings, executor: Executor,
                             transport: Transport | None = None,
                             orphan_grace: float = 0.0) -> QueueService:
    """Recover the spool, then start the runner, its wake-up socket and the control socket.

    Args:
        transport: the delivery attempt (tests inject one); default `outbound.transport`.
        orphan_grace: see `Spool.recover`; 0 is right when no listener accepts mail yet.
    """
    loop = asyncio.get_running_loop()
    spool = open_spool(settings)
    counts = await loop.run_in_executor(executor, spool.recover, orphan_grace)
    log.event("queue.recovered", **counts)
    directory = SqliteDirectory(open_database(settings.data_dir))
    deliverer = build_deliverer(settings, executor, directory)
    pool = session_pool(settings) if transport is None else None
    runner = QueueRunner(
        spool, transport or real_transport(settings, pool), executor, retry_policy(settings),
        _reporter(settings, deliverer, directory),
        RunnerLimits(settings.get_int("queue.max_deliveries"),
                     settings.get_int("queue.max_per_domain"),
                     settings.get_int("queue.initial_per_domain")),
        # DKIM (issue 5): signs mail of local domains that have keys, leaves the rest
        signer=DkimSigner(settings.data_dir, settings.get_str("server.hostname")))
    wake = await _listen(settings, runner)
    control = ControlServer(QueueOps(spool, runner.wake, lambda: runner.in_flight), executor)
    try:
        await control.start(settings.data_dir / SOCKET_NAME)
    except OSError as exc:     # the CLI then works on the spool directly
        log.error("control.socket_failed", exc)
    task = loop.create_task(runner.run())
    log.event("queue.started", queued=counts["queued"])
    return QueueService(runner, task, control, wake, spool, pool)


async def _listen(settings: Settings, runner: QueueRunner) -> asyncio.DatagramTransport | None:
    path = wake_socket_path(settings.data_dir / QUEUE_DIR)
    try:
        return await listen_for_wakes(path, runner.wake)
    except OSError as exc:     # e.g. a path too long for a UNIX socket: polling still works
        log.error("queue.wake_socket_failed", exc, path=str(path))
        return None
