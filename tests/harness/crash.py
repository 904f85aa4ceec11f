"""What the SIGKILL crash tests (tests/crash/) share: the seed to rerun a run with, a ledger
of what the client threads saw acknowledged, killing and restarting the engine at chosen
acknowledgement counts while the clients run, and telling which tmp/ files a killed engine
left behind.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.engine import EngineProcess

# Maildir names the engine writes: ...P<pid>Q<n>... (maildir(5) unique names)
_PID_IN_NAME = re.compile(r"P(\d+)Q\d+")


def seeded(what: str) -> random.Random:
    """A generator seeded from $CRASH_SEED, or at random; the seed is printed for a rerun."""
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**32))
    print(f"{what} seed {seed} (rerun with CRASH_SEED={seed})")
    return random.Random(seed)


@dataclass
class AckLedger:
    """What all client threads saw (guarded by `cond`): acknowledgements by key, lost
    connections and errors. Each test's ledger adds what it needs."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    acked: Counter[str] = field(default_factory=Counter)
    lost_connections: int = 0
    errors: list[str] = field(default_factory=list)

    def ack(self, key: str) -> None:
        with self.cond:
            self.acked[key] += 1
            self.cond.notify_all()

    def error(self, text: str) -> None:
        with self.cond:
            self.errors.append(text)
            self.cond.notify_all()

    def wait_acked(self, count: int, timeout: float) -> bool:
        """Until `count` acknowledgements in all (True), an error, or `timeout` (False)."""
        with self.cond:
            return self.cond.wait_for(
                lambda: sum(self.acked.values()) >= count or bool(self.errors), timeout)


def kill_and_restart(engine: EngineProcess, ledger: AckLedger, points: list[int],
                     rng: random.Random, timeout: float, jitter: float = 0.0) -> list[int]:
    """At each acknowledgement count in `points`, SIGKILL the engine and start it again on
    the same ports and data; the killed pids. With `jitter`, wait up to that many seconds
    first, so that the kill does not always land right after an acknowledgement."""
    killed: list[int] = []
    for point in points:
        assert ledger.wait_acked(point, timeout), "clients stalled before a kill"
        assert not ledger.errors, "\n".join(ledger.errors)
        if jitter:
            time.sleep(rng.uniform(0.0, jitter))
        assert engine.proc is not None
        killed.append(engine.proc.pid)
        engine.kill()
        time.sleep(rng.uniform(0.0, 0.3))    # clients meet a closed port meanwhile
        engine.start()
    return killed


def run_under_kills(engine: EngineProcess, threads: list[threading.Thread], ledger: AckLedger,
                    points: list[int], rng: random.Random, timeout: float,
                    jitter: float = 0.0) -> list[int]:
    """Start the client threads, kill and restart the engine at `points` meanwhile, wait for
    the threads (each up to `timeout`), stop the engine cleanly; the killed pids."""
    for thread in threads:
        thread.start()
    killed = kill_and_restart(engine, ledger, points, rng, timeout, jitter)
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "client threads did not finish"
    assert engine.stop() == 0
    return killed


@contextmanager
def killed_if_left_running(engine: EngineProcess) -> Iterator[None]:
    """Make sure a failing test leaves no engine process behind."""
    try:
        yield
    finally:
        if engine.proc is not None and engine.proc.poll() is None:
            engine.kill()


def left_by_killed(name: str, killed: list[int]) -> bool:
    """Whether a tmp/ file name was written by one of the `killed` engine processes."""
    pid = _PID_IN_NAME.search(name)
    return pid is not None and int(pid.group(1)) in killed
