"""Engine worker processes sharing the MX port (SO_REUSEPORT), and their supervisor.

With `engine.workers` = 1 the engine is this one process. With more, this process becomes
a supervisor with no event loop and no threads, so that it can fork at any time: it forks
the primary (slot 0: MX, submission, queue runner, control socket, see engine.py), waits
until it is ready (its spool recovery is done), then forks the MX workers (slots 1..N-1).
Each binds the MX port with SO_REUSEPORT and the kernel spreads connections over them.
With `engine.pin_workers`, worker N runs on the N-th CPU only (see `worker_cpu`).

SIGTERM or SIGINT is forwarded to every worker, which shuts down gracefully; the
supervisor exits when all have, with 0 if all exited cleanly. A worker that dies otherwise
is forked again (after a pause that doubles while it keeps dying young). A worker whose
supervisor disappears (SIGKILL) stops by itself. A worker that fails during the first
start stops the whole engine: that is a configuration problem, not a crash.

SIGUSR1 (sent by the primary for the control op `engine.restart`) stops every worker as
SIGTERM does and then re-executes the supervisor (engine_restart.py), which starts them anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import select
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn, TypeVar

from appliance.core import log
from appliance.engine import Role, run_engine
from appliance.engine_restart import RESTART_SIGNAL, reexec
from appliance.settings import Settings

READY_TIMEOUT = 120.0     # seconds a worker may take to start (spool recovery included)
RESTART_ORPHAN_GRACE = 60.0   # a restarted primary's recovery spares younger spool files
FIRST_PAUSE, MAX_PAUSE = 0.5, 30.0
YOUNG = 60.0              # a worker that dies younger than this counts as failing
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_FORK_BLOCKED = _STOP_SIGNALS | {RESTART_SIGNAL}
_T = TypeVar("_T")


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop `engine.event_loop` names. uvloop by default: the engine's small IMAP
    commands are mostly loop overhead, and it takes about a fifth off a NOOP's CPU
    (tests/bench/README.md, issue 4 fifth pass); "asyncio" is the fallback."""
    if settings.get_str("engine.event_loop") != "uvloop":
        return asyncio.new_event_loop
    try:    # imported only when chosen: the fallback must work without it
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        raise RuntimeError("engine.event_loop is 'uvloop' but the uvloop package is not "
                           "installed; set it to 'asyncio'") from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_loop(settings: Settings, main: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run(main) on the loop the settings choose."""
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        return runner.run(main)


def worker_count(settings: Settings) -> int:
    """`engine.workers`, with 0 meaning one per CPU this process may use."""
    wanted = settings.get_int("engine.workers")
    return wanted or len(os.sched_getaffinity(0)) or 1


def worker_cpu(slot: int, cpus: Sequence[int]) -> int:
    """The CPU worker `slot` is pinned to: the CPUs this process may use, round robin.

    Why pin: per message, a worker's event loop and its delivery threads hand work to each
    other some ten times (each os call in a thread gives up and takes back the GIL). On one
    CPU that is a switch between threads sharing caches; spread over CPUs, each hand-off is
    a cross-CPU wake-up (an interrupt, and a VM exit on a virtual machine). Measured on 2
    cores: about a third more messages/s for the same CPU time. Connections do not follow
    the CPU load anyway: SO_REUSEPORT hashes them over the workers.
    """
    return sorted(cpus)[slot % len(cpus)]


def run(settings: Settings) -> int:
    """Run the engine until SIGTERM or SIGINT, in one process or as N workers; after a
    restart request, re-execute this process (engine_restart.py) instead of returning."""
    count = worker_count(settings)
    if count == 1:
        if run_loop(settings, run_engine(settings)):
            reexec()
        return 0
    supervisor = Supervisor(settings, count)
    code = supervisor.run()
    if supervisor.restarting:   # also after a worker failed: a fresh start is what helps
        reexec()
    return code


@dataclass
class _Slot:
    pid: int = 0
    started: float = 0.0
    failures: int = 0


@dataclass
class Supervisor:
    """Forks and watches the workers; see the module docstring."""

    settings: Settings
    count: int
    stopping: bool = False
    failed: bool = False
    restarting: bool = False
    slots: dict[int, _Slot] = field(default_factory=dict)
    cpus: frozenset[int] = field(default_factory=lambda: frozenset(os.sched_getaffinity(0)))

    def run(self) -> int:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(RESTART_SIGNAL, self._on_restart)
        log.event("engine.supervisor_started", workers=self.count, pid=os.getpid())
        for slot in range(self.count):
            if self.stopping or not self._start(slot, first_start=True):
                self._stop_all(failed=not self.stopping)
                break
        while self._live():
            self._reap(*os.wait())
        log.event("engine.supervisor_stopped", clean=not self.failed)
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.restarting = False     # stop means stop, also during a restart
        self._stop_all(failed=False)

    def _on_restart(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:       # a restart asked for while stopping is dropped
            log.event("engine.restart_requested", workers=self.count)
            self.restarting = True
        self._stop_all(failed=False)

    def _stop_all(self, *, failed: bool) -> None:
        self.stopping = True
        self.failed = self.failed or failed
        for state in self.slots.values():
            if state.pid:
                _signal(state.pid, signal.SIGTERM)

    def _live(self) -> bool:
        return any(state.pid for state in self.slots.values())

    def _start(self, slot: int, *, first_start: bool = False) -> bool:
        """Fork the worker for `slot` and wait until it is ready; False if it never was."""
        state = self.slots.setdefault(slot, _Slot())
        grace = 0.0 if first_start else RESTART_ORPHAN_GRACE
        read_end, write_end = os.pipe()
        # Signals wait until the child has its own handlers: ours would act on its siblings.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            pin = self.settings.get_bool("engine.pin_workers")
            _child(self.settings, slot, write_end, grace,
                   worker_cpu(slot, tuple(self.cpus)) if pin else None)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)
        os.close(write_end)
        state.pid, state.started = pid, time.monotonic()
        if self.stopping:   # a signal came while forking: _stop_all did not know this pid
            _signal(pid, signal.SIGTERM)
        ready = _wait_ready(read_end)
        log.event("engine.worker_started", slot=slot, pid=pid, ready=ready)
        return ready

    def _reap(self, pid: int, status: int) -> None:
        slot = next((s for s, state in self.slots.items() if state.pid == pid), None)
        if slot is None:
            return
        state = self.slots[slot]
        state.pid = 0
        code = os.waitstatus_to_exitcode(status)
        log.event("engine.worker_exited", slot=slot, pid=pid, status=code)
        if self.stopping:
            self.failed = self.failed or code != 0
            return
        lived = time.monotonic() - state.started
        state.failures = state.failures + 1 if lived < YOUNG else 1
        self._pause(min(MAX_PAUSE, FIRST_PAUSE * 2 ** (state.failures - 1)))
        if not self.stopping:
            self._start(slot)

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake early when a signal asks to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))


def _wait_ready(read_end: int) -> bool:
    """True once the worker wrote its ready byte; False if it died or took too long."""
    try:
        readable, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
        return bool(readable) and os.read(read_end, 1) == b"R"
    finally:
        os.close(read_end)


def _child(settings: Settings, slot: int, ready_fd: int, orphan_grace: float,
           cpu: int | None) -> NoReturn:
    """The forked worker: run its part of the engine (on `cpu` only, unless None), then leave
    without any cleanup of the supervisor's state (os._exit: nothing inherited is flushed or
    closed twice)."""
    if cpu is not None:
        _pin(cpu)
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(RESTART_SIGNAL, signal.SIG_IGN)     # until run_engine takes it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)

    def ready() -> None:
        os.write(ready_fd, b"R")
        os.close(ready_fd)

    role = Role(primary=slot == 0, reuse_port=True, orphan_grace=orphan_grace,
                ready=ready, supervisor=os.getppid(), slot=slot)
    code = 0
    try:
        run_loop(settings, run_engine(settings, role))
    except BaseException as exc:   # whatever it was: logged here, the supervisor decides
        log.error("engine.worker_failed", exc, slot=slot)
        code = 1
    os._exit(code)


def _pin(cpu: int) -> None:
    """Run this process (and the threads it starts later) on `cpu` only, if it still can."""
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError) as exc:   # e.g. the CPU went offline: the kernel decides
        log.error("engine.pin_failed", exc, cpu=cpu)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):   # it has just exited
        os.kill(pid, signum)
