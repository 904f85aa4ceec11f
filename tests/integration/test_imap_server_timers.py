"""The IMAP driver's timers and backpressure, with the real listeners started in this process
(real sockets, login guard and Maildir store) so that the timers can be shorter than the
settings allow: the autologout timer is at least 30 minutes there (RFC 9051 5.4).

Covered: autologout after login, during IDLE, IDLE re-armed by activity, a client that does
not read a huge FETCH (the server stops pulling output instead of buffering it), and shutdown
not waiting for an idling client.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.imap import server
from appliance.imap.server_plans import BYE_AUTOLOGOUT
from harness.imap import ImapWire
from harness.imap_server import AUTOLOGOUT, InProcessImap


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[InProcessImap]:
    running = InProcessImap(tmp_path / "data")
    try:
        yield running
    finally:
        if running.loop.is_running():
            running.stop()


def _bye(wire: ImapWire, timeout: float) -> bytes | None:
    return wire.read_line(timeout)


def test_autologout_after_login(imap: InProcessImap) -> None:
    with imap.connect() as wire:
        started = time.monotonic()
        assert _bye(wire, 5) == BYE_AUTOLOGOUT.rstrip(b"\r\n")
        # asyncio runs a timer up to its clock resolution early (BaseEventLoop._run_once):
        # allow 10 ms, far from any shorter timer.
        assert AUTOLOGOUT - 0.01 <= time.monotonic() - started < AUTOLOGOUT + 2
        assert wire.is_closed()
    assert imap.config.tracker.live == 0


def test_autologout_during_idle(imap: InProcessImap) -> None:
    with imap.connect() as wire:
        wire.command("S", "SELECT INBOX")
        wire.send_line("I IDLE")
        assert wire.read_line() == b"+ idling"
        started = time.monotonic()
        assert _bye(wire, 5) == BYE_AUTOLOGOUT.rstrip(b"\r\n")
        assert AUTOLOGOUT - 0.5 <= time.monotonic() - started < AUTOLOGOUT + 2
        assert wire.is_closed()


def test_idle_timer_rearmed_by_activity(imap: InProcessImap) -> None:
    with imap.connect() as wire:
        wire.command("S", "SELECT INBOX")
        wire.send_line("I IDLE")
        assert wire.read_line() == b"+ idling"
        # Three autologout periods, an octet every half period: the session must stay.
        for octet in b"DONE":
            time.sleep(AUTOLOGOUT / 2)
            wire.send(bytes([octet]))
        time.sleep(AUTOLOGOUT / 2)
        wire.send(b"\r\n")
        assert wire.read_until_tagged("I")[-1] == b"I OK IDLE terminated"
        assert wire.command("N", "NOOP")[-1].startswith(b"N OK")


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


BIG = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 4000     # ~4 MB


def test_unread_fetch_output_is_not_buffered(tmp_path: Path) -> None:
    body = BIG
    imap = InProcessImap(tmp_path / "data", autologout=30.0)
    try:
        _unread_fetch(imap, body)
    finally:
        imap.stop()


def _unread_fetch(imap: InProcessImap, body: bytes) -> None:
    with imap.connect() as wire:
        wire.send_line(f"A APPEND INBOX {{{len(body)}+}}")
        wire.send(body + b"\r\n")
        assert wire.read_until_tagged("A")[-1].startswith(b"A OK")
        wire.command("S", "SELECT INBOX")
        before = _rss()
        wire.send(b"".join(f"F{n} FETCH 1 BODY.PEEK[]\r\n".encode() for n in range(40)))
        time.sleep(2)     # 160 MB of answers are due; the client reads none of it
        grown = _rss() - before
        assert grown < 60 * 1024 * 1024, f"RSS grew by {grown} octets"
        wire.sock.settimeout(30)
        for n in range(40):
            reply = wire.read_until_tagged(f"F{n}", timeout=30)
            assert reply[-1].startswith(f"F{n} OK".encode())
            assert body in reply[0]


def test_client_that_stops_reading_is_dropped(imap: InProcessImap) -> None:
    with imap.connect() as wire:
        wire.send_line(f"A APPEND INBOX {{{len(BIG)}+}}")
        wire.send(BIG + b"\r\n")
        assert wire.read_until_tagged("A")[-1].startswith(b"A OK")
        wire.command("S", "SELECT INBOX")
        wire.send(b"".join(f"F{n} FETCH 1 BODY.PEEK[]\r\n".encode() for n in range(40)))
        time.sleep(AUTOLOGOUT + 1.5)     # blocked writes for longer than the idle timeout
        answered = 0
        with contextlib.suppress(ConnectionError):     # dropped, mid-literal
            while (line := wire.read_line(timeout=10)) is not None:
                answered += line.startswith(b"F")
        assert answered < 40
    assert imap.config.tracker.live == 0


def test_shutdown_closes_idlers_at_once(imap: InProcessImap) -> None:
    with imap.connect() as wire:
        wire.command("S", "SELECT INBOX")
        wire.send_line("I IDLE")
        assert wire.read_line() == b"+ idling"
        started = time.monotonic()
        imap.stop(grace=5.0)
        assert time.monotonic() - started < 2.0      # an idling client is not "busy"
        assert wire.read_line() == server.BYE_SHUTTING_DOWN.rstrip(b"\r\n")
        assert wire.is_closed()
