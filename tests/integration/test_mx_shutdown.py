"""Graceful shutdown: on SIGTERM the MX stops accepting, closes idle sessions with 421, lets
transactions finish within `limits.shutdown_grace`, closes what is left with 421 and exits 0.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted

HOSTNAME = "mx.mailstead.test"
GOODBYE = replies.SHUTTING_DOWN.format(hostname=HOSTNAME)
GRACE = 3


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[[int], EngineProcess]]:
    """Start engines with a given shutdown grace; kill whatever is left at the end."""
    started: list[EngineProcess] = []

    def make(grace: int) -> EngineProcess:
        proc = EngineProcess(tmp_path / f"data{len(started)}", limits__shutdown_grace=grace)
        started.append(proc)
        proc.start()
        proc.add_domain("example.test")
        proc.add_account("alice@example.test")
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


def sigterm(engine: EngineProcess) -> float:
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGTERM)
    return time.monotonic()


def in_transaction(port: int, data: bytes | None = None) -> SMTPWire:
    """A session after MAIL and RCPT; with `data`, also after DATA and that much body."""
    wire = greeted(port)
    assert str(wire.command("MAIL FROM:<sender@example.org>")) == replies.SENDER_OK
    assert str(wire.command("RCPT TO:<alice@example.test>")) == replies.RECIPIENT_OK
    if data is not None:
        assert wire.command("DATA").code == 354
        wire.send(data)
    return wire


def wait_until_refused(port: int, timeout: float = 3.0) -> None:
    """New connections must soon be refused outright (at worst greeted with a 421 first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wire = SMTPWire(port, timeout=2)
        except ConnectionRefusedError:
            return
        with wire:
            line = wire.read_line()
        assert line is None or line == GOODBYE or line.startswith("220 "), line
        time.sleep(0.05)
    raise AssertionError("the listener still accepts connections after SIGTERM")


def test_sigterm_lets_a_transaction_finish_and_closes_the_rest(
        make_engine: Callable[[int], EngineProcess]) -> None:
    engine = make_engine(GRACE)
    port = engine.smtp_port
    finishing = in_transaction(port)
    idle = greeted(port)
    stalled = in_transaction(port, data=b"Subject: never finished\r\n\r\npart")
    signalled = sigterm(engine)

    assert idle.read_line(timeout=2) == GOODBYE        # idle sessions go at once
    assert idle.is_closed()
    wait_until_refused(port)

    assert finishing.command("DATA").code == 354       # the transaction finishes in the grace
    finishing.send(b"Subject: finished\r\n\r\nin the grace period\r\n.\r\n")
    reply = finishing.read_reply()
    assert reply.code == 250, str(reply)
    assert finishing.read_line(timeout=2) == GOODBYE   # and no new transaction after it
    assert finishing.is_closed()

    assert stalled.read_line(timeout=GRACE + 5) == GOODBYE
    elapsed = time.monotonic() - signalled
    assert GRACE - 0.5 <= elapsed <= GRACE + 3, f"421 after {elapsed:.1f}s"
    assert stalled.is_closed()

    assert engine.proc is not None
    assert engine.proc.wait(timeout=10) == 0
    (data,) = engine.messages("alice@example.test")
    assert data.endswith(b"Subject: finished\n\nin the grace period\n")
    for wire in (finishing, idle, stalled):
        wire.close()


def test_sigterm_without_sessions_exits_at_once(
        make_engine: Callable[[int], EngineProcess]) -> None:
    engine = make_engine(30)
    signalled = sigterm(engine)
    assert engine.proc is not None
    assert engine.proc.wait(timeout=40) == 0
    assert time.monotonic() - signalled < 10, "waited for the grace with no sessions"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", engine.smtp_port), timeout=2)
