"""`engine.workers` > 1: MX worker processes on one port (SO_REUSEPORT) under a supervisor.

The supervisor forwards SIGTERM and exits when every worker has; a worker that dies is
forked again; workers whose supervisor was killed stop by themselves; connections are
spread over the workers; the primary's queue runner exists once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from appliance.smtp import replies
from appliance.workers import worker_cpu
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted
from harness.transactions import SENDER, open_transaction

RCPT = "alice@example.test"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    started: list[EngineProcess] = []

    def make(count: int, **settings: object) -> EngineProcess:
        engine = EngineProcess(tmp_path / f"data{len(started)}", engine__workers=count,
                               limits__shutdown_grace=5, **settings)
        started.append(engine)
        engine.start()
        engine.add_domain("example.test")
        engine.add_account(RCPT)
        wait_for(lambda: engine.log_text().count('"event": "engine.worker_started"') == count,
                 "every worker to be ready")
        return engine

    yield make
    for engine in started:
        for child in children(engine):
            child.kill()
        if engine.proc is not None and engine.proc.poll() is None:
            engine.kill()


def children(engine: EngineProcess) -> list[psutil.Process]:
    assert engine.proc is not None
    try:
        return list(psutil.Process(engine.proc.pid).children())
    except psutil.NoSuchProcess:
        return []


def worker_pid(engine: EngineProcess, slot: int) -> int:
    """The pid of the worker in `slot`, from the supervisor's log."""
    for line in engine.log_text().splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "engine.worker_started" and entry.get("slot") == slot:
            return int(entry["pid"])
    raise AssertionError(f"no worker in slot {slot}")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def deliver(engine: EngineProcess, subject: str) -> None:
    with open_transaction(engine, RCPT) as wire:
        wire.send(f"Subject: {subject}\r\n\r\nbody\r\n.\r\n".encode())
        assert wire.read_reply().code == 250


def test_connections_are_spread_over_the_workers_and_all_deliver(
        workers: Callable[[int], EngineProcess]) -> None:
    engine = workers(2)
    sessions = [greeted(engine.smtp_port) for _ in range(16)]
    serving = {child.pid for child in children(engine)
               if any(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == engine.smtp_port
                      for c in child.net_connections("tcp"))}
    assert len(serving) == 2, "one worker got every connection"
    for number, wire in enumerate(sessions):
        assert str(wire.command(f"MAIL FROM:<{SENDER}>")) == replies.SENDER_OK
        assert str(wire.command(f"RCPT TO:<{RCPT}>")) == replies.RECIPIENT_OK
        assert wire.command("DATA").code == 354
        wire.send(f"Subject: {number}\r\n\r\nbody\r\n.\r\n".encode())
        assert wire.read_reply().code == 250
        wire.close()
    assert len(engine.messages(RCPT)) == 16
    assert engine.log_text().count('"event": "queue.started"') == 1   # the primary only


def test_sigterm_lets_a_transaction_finish_then_all_exit_cleanly(
        workers: Callable[[int], EngineProcess]) -> None:
    engine = workers(2)
    kids = children(engine)
    wire = open_transaction(engine, RCPT)
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    wire.send(b"Subject: in the grace\r\n\r\nbody\r\n.\r\n")
    assert wire.read_reply().code == 250
    assert engine.proc.wait(timeout=20) == 0
    assert psutil.wait_procs(kids, timeout=5)[1] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", engine.smtp_port), timeout=2)
    assert len(engine.messages(RCPT)) == 1


def test_each_worker_runs_on_its_own_cpu(workers: Callable[..., EngineProcess]) -> None:
    cpus = os.sched_getaffinity(0)
    engine = workers(3)                   # more workers than CPUs here: round robin
    for slot in range(3):
        affinity = psutil.Process(worker_pid(engine, slot)).cpu_affinity()
        assert affinity == [worker_cpu(slot, tuple(cpus))], f"slot {slot}"
    assert engine.proc is not None
    assert psutil.Process(engine.proc.pid).cpu_affinity() == sorted(cpus)  # not the supervisor
    unpinned = workers(2, engine__pin_workers=False)
    for slot in range(2):
        assert psutil.Process(worker_pid(unpinned, slot)).cpu_affinity() == sorted(cpus)


@pytest.mark.parametrize("slot", [0, 1], ids=["primary", "mx worker"])
def test_a_killed_worker_is_forked_again(
        workers: Callable[[int], EngineProcess], slot: int) -> None:
    engine = workers(2)
    victim = psutil.Process(worker_pid(engine, slot))
    victim.kill()
    wait_for(lambda: engine.log_text().count('"event": "engine.worker_started"') == 3,
             "the worker to be forked again and ready")
    assert victim.pid not in [child.pid for child in children(engine)]
    for number in range(6):
        deliver(engine, f"after {number}")
    assert len(engine.messages(RCPT)) == 6
    log = engine.log_text()
    assert '"event": "engine.worker_exited"' in log
    assert log.count('"event": "queue.recovered"') == 1 + (slot == 0)
    assert engine.stop() == 0


def test_workers_stop_when_the_supervisor_is_killed(
        workers: Callable[[int], EngineProcess]) -> None:
    engine = workers(2)
    orphans = children(engine)
    engine.kill()                                 # SIGKILL: no chance to forward anything
    _, alive = psutil.wait_procs(orphans, timeout=10)
    assert alive == [], "workers outlived their supervisor"
    with pytest.raises(ConnectionRefusedError):
        SMTPWire(engine.smtp_port, timeout=2)
