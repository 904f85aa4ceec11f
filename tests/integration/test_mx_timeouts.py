"""Timeouts (RFC 5321 4.5.3.2): a silent or trickling client gets `421 4.4.2` and is closed.

The idle timer runs between commands and only a valid command restarts it; the DATA timer
bounds the whole message transfer, however slowly the bytes keep coming. Each test starts
its own engine with the shortest timeouts the schema allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted

HOSTNAME = "mx.mailstead.test"
TIMEOUT_REPLY = replies.TIMEOUT.format(hostname=HOSTNAME)


def started(path: Path, **settings: int) -> EngineProcess:
    engine = EngineProcess(path, **settings)
    engine.start()
    engine.add_domain("example.test")
    engine.add_account("alice@example.test")
    return engine


@pytest.fixture
def idle_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    engine = started(tmp_path / "data", limits__idle_timeout=5, limits__data_timeout=60)
    yield engine
    assert engine.stop() == 0


@pytest.fixture
def data_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    engine = started(tmp_path / "data", limits__idle_timeout=15, limits__data_timeout=5)
    yield engine
    assert engine.stop() == 0


def wait_for_timeout(wire: SMTPWire, since: float, trickle: bytes = b"",
                     limit: float = 20.0) -> float:
    """Send `trickle` a byte each 0.25 s until the 421 comes; return seconds since `since`."""
    deadline = time.monotonic() + limit
    position = 0
    while time.monotonic() < deadline:
        if trickle:
            wire.send(trickle[position % len(trickle):position % len(trickle) + 1])
            position += 1
        try:
            line = wire.read_line(timeout=0.25)
        except TimeoutError:
            continue
        elapsed = time.monotonic() - since
        assert line == TIMEOUT_REPLY, f"got {line!r} after {elapsed:.1f}s"
        assert wire.is_closed(timeout=5), "the connection stayed open after the 421"
        return elapsed
    raise AssertionError(f"no timeout within {limit}s")


def test_idle_client_gets_421_and_is_closed(idle_engine: EngineProcess) -> None:
    quiet = greeted(idle_engine.smtp_port)
    quiet_since = time.monotonic()
    # A client that sends a command one byte at a time and never ends it is idle too.
    slow = greeted(idle_engine.smtp_port)
    slow_since = time.monotonic()
    # A client that sends a valid command every 1.5 s outlives both.
    busy = greeted(idle_engine.smtp_port)
    busy_replies: list[str] = []

    def keep_busy() -> None:
        for _ in range(4):
            time.sleep(1.5)
            busy_replies.append(str(busy.command("NOOP")))

    worker = threading.Thread(target=keep_busy)
    worker.start()
    elapsed_slow = wait_for_timeout(slow, slow_since, trickle=b"NOOP and never a line end ")
    elapsed_quiet = wait_for_timeout(quiet, quiet_since)
    worker.join()
    assert 4.5 <= elapsed_slow <= 8.0
    assert 4.5 <= elapsed_quiet <= 8.0
    assert busy_replies == [replies.OK] * 4             # 6 s, past the 5 s idle timeout
    busy.close()
    with greeted(idle_engine.smtp_port) as fresh:       # the slots were given back
        assert str(fresh.command("NOOP")) == replies.OK


def test_data_timeout_fires_while_bytes_trickle_and_only_during_data(
        data_engine: EngineProcess) -> None:
    port = data_engine.smtp_port
    # A session that finished a message quickly, then waits: the idle timer (15 s) applies
    # again after DATA, not what was left of the DATA timer (5 s).
    done = greeted(port)
    done.command("MAIL FROM:<sender@example.org>")
    done.command("RCPT TO:<alice@example.test>")
    assert done.command("DATA").code == 354
    done.send(b"Subject: quick\r\n\r\nquick\r\n.\r\n")
    assert done.read_reply().code == 250
    done_since = time.monotonic()

    slow = greeted(port)
    assert str(slow.command("MAIL FROM:<sender@example.org>")) == replies.SENDER_OK
    assert str(slow.command("RCPT TO:<alice@example.test>")) == replies.RECIPIENT_OK
    assert slow.command("DATA").code == 354
    since = time.monotonic()
    elapsed = wait_for_timeout(slow, since, trickle=b"Subject: slow\r\n\r\nbody line\r\n")
    assert 4.5 <= elapsed <= 8.0, f"DATA timer fired after {elapsed:.1f}s, expected ~5s"
    assert len(data_engine.messages("alice@example.test")) == 1    # only the quick one

    time.sleep(max(0.0, 7.0 - (time.monotonic() - done_since)))
    assert str(done.command("NOOP")) == replies.OK
    done.close()
