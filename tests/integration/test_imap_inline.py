"""Commands answered on the event loop (`server_inline`) over real sockets, with the real
listeners, login guard and Maildir store in this process (`InProcessImap`), so that the
driver's count of worker-thread jobs can be read: which commands stay on the loop, that a
big FETCH still moves to a worker thread, that a change elsewhere sends the next command to
one, that inline commands keep the bad-command limit and the write timeout, and that a
client pipelining inline commands starves neither other clients nor an IDLE wake-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.imap import responses as r
from appliance.imap import server
from appliance.imap import server_inline as inline
from harness.imap import ImapWire
from harness.imap_server import AUTOLOGOUT, InProcessImap, serving


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[InProcessImap]:
    with serving(tmp_path / "data", autologout=30.0) as running:
        yield running


def _append(wire: ImapWire, body: bytes, tag: str = "A") -> None:
    wire.send_line(f"{tag} APPEND INBOX {{{len(body)}+}}")
    wire.send(body + b"\r\n")
    assert wire.read_until_tagged(tag)[-1].startswith(f"{tag} OK".encode())


def _message(n: int, size: int = 200) -> bytes:
    line = b"x" * 70 + b"\r\n"
    return b"Subject: m%d\r\n\r\n" % n + line * max(1, size // len(line))


def _selected(imap: InProcessImap, messages: int = 3) -> ImapWire:
    wire = imap.connect()
    for n in range(messages):
        _append(wire, _message(n))
    assert wire.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert wire.command("W", "NOOP")[-1].startswith(b"W OK")   # takes the change token
    return wire


def _jobs(imap: InProcessImap) -> int:
    return imap.config.thread_jobs.total


def test_noop_and_fetches_of_stored_items_stay_on_the_loop(imap: InProcessImap) -> None:
    with _selected(imap) as wire:
        before = _jobs(imap)
        flags = wire.command("F", "FETCH 1:* (FLAGS UID RFC822.SIZE)")
        whole = wire.command("B", "UID FETCH 2 (BODY.PEEK[])")
        assert wire.command("N", "NOOP")[-1] == b"N OK NOOP completed"
        assert _jobs(imap) == before
    assert len(flags) == 4
    assert flags[0].startswith(b"* 1 FETCH (FLAGS (")
    assert flags[-1].startswith(b"F OK")
    assert _message(1) in whole[0]
    assert whole[-1].startswith(b"B OK")


@pytest.mark.parametrize("text", ["STORE 1 +FLAGS (\\Flagged)", "FETCH 1 BODY[]",
                                  "SEARCH SUBJECT m1", "FETCH 1 ENVELOPE", "STATUS INBOX (UNSEEN)"])
def test_commands_that_write_or_parse_go_to_a_worker_thread(imap: InProcessImap,
                                                            text: str) -> None:
    with _selected(imap) as wire:
        before = _jobs(imap)
        assert wire.command("C", text)[-1].startswith(b"C OK")
        assert _jobs(imap) == before + 1


def test_a_change_elsewhere_sends_the_next_command_to_a_thread(imap: InProcessImap) -> None:
    with _selected(imap) as wire, imap.connect() as other:
        _append(other, _message(7))
        before = _jobs(imap)
        reply = wire.command("N", "NOOP")
        assert b"* 4 EXISTS" in reply
        assert _jobs(imap) == before + 1       # the sync that found the new message
        assert wire.command("M", "NOOP") == [b"M OK NOOP completed"]
        assert _jobs(imap) == before + 1       # and back on the loop


def test_a_big_fetch_still_moves_to_a_worker_thread(imap: InProcessImap) -> None:
    size = 2 * 1024 * 1024
    with _selected(imap, messages=0) as wire:
        for n in range(6):
            _append(wire, _message(n, size))
        assert wire.command("N", "NOOP")[-1].startswith(b"N OK")
        before = _jobs(imap)
        reply = wire.command("F", "FETCH 1:* (BODY.PEEK[])")
        assert _jobs(imap) > before               # 12 MB is far past the inline budget
        assert reply[-1].startswith(b"F OK")
        assert [_message(n, size) in line for n, line in enumerate(reply[:-1])] == [True] * 6


def test_waiting_for_a_slow_reader_does_not_spend_the_inline_budget(
        imap: InProcessImap, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget bounds a command's work on the loop, not the time its client takes to
    read: a FETCH of whole messages to a client that reads slowly (imaplib parses as it
    reads) stays on the loop, written as the socket drains, instead of handing the rest to a
    worker thread that makes a whole batch of it before sending any (the client idle)."""
    monkeypatch.setattr(inline, "INLINE_BUDGET", 0.1)   # far above the work, below the waits
    # 10 MB: past what the kernel's send buffer (up to 4 MB) and the client's small window
    # take, so the transport asks the server to pause, many times.
    size, count = 512 * 1024, 20
    with imap.connect(rcvbuf=65536) as wire:
        for n in range(count):
            _append(wire, _message(n, size))
        assert wire.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
        assert wire.command("N", "NOOP")[-1].startswith(b"N OK")
        before = _jobs(imap)
        wire.send_line("F FETCH 1:* (BODY.PEEK[])")
        received = bytearray()
        started = time.monotonic()
        while not received.endswith(b"F OK FETCH completed\r\n"):
            time.sleep(0.004)
            chunk = wire.sock.recv(65536)
            assert chunk, "the server closed the connection"
            received += chunk
        waited = time.monotonic() - started
        assert _jobs(imap) == before                    # all of it on the loop
    assert waited > 2 * inline.INLINE_BUDGET            # the client did keep it waiting
    assert all(_message(n, size) in received for n in range(count))


def test_inline_commands_count_towards_the_bad_command_limit(imap: InProcessImap) -> None:
    with _selected(imap) as wire:
        limit, before = imap.config.max_bad_commands, _jobs(imap)
        for n in range(limit - 1):
            assert wire.command(f"X{n}", "FETCH 99 (FLAGS)")[-1].startswith(f"X{n} BAD".encode())
        wire.send_line("Y FETCH 99 (FLAGS)")
        assert wire.read_line() == f"Y BAD {r.BAD_SEQUENCE}".encode()
        assert wire.read_line() == server.BYE_TOO_MANY_BAD.rstrip(b"\r\n")
        assert wire.is_closed()
        assert _jobs(imap) == before            # all answered on the loop


def test_a_client_not_reading_inline_answers_is_dropped(tmp_path: Path) -> None:
    imap = InProcessImap(tmp_path / "data")          # autologout = write timeout = 1 s
    try:
        with _selected(imap, messages=0) as wire:
            _append(wire, _message(0, 256 * 1024))
            wire.send(b"".join(b"F%d FETCH 1 BODY.PEEK[]\r\n" % n for n in range(400)))
            time.sleep(AUTOLOGOUT + 1.5)             # 100 MB due; the client reads none
            assert imap.config.tracker.live == 0
    finally:
        imap.stop()


def _pipeline(port: int, stop: threading.Event, answered: list[int]) -> None:
    """A client sending back-to-back FLAGS FETCHes, 500 per write, reading all answers."""
    with ImapWire(port) as wire:
        wire.read_line()
        wire.command("L", 'LOGIN dora@example.test "correct horse battery"')
        wire.command("S", "SELECT INBOX")
        batch = b"".join(b"P%d FETCH 1:* (FLAGS)\r\n" % n for n in range(500))
        while not stop.is_set():
            wire.send(batch)
            wire.read_until_tagged("P499", timeout=30)
            answered[0] += 500


def test_pipelined_inline_commands_starve_neither_others_nor_idle(imap: InProcessImap) -> None:
    with _selected(imap) as idler, imap.connect() as other:
        stop, answered = threading.Event(), [0]
        busy = threading.Thread(target=_pipeline, args=(imap.imap_port, stop, answered))
        busy.start()
        try:
            idler.send_line("I IDLE")
            assert idler.read_line() == b"+ idling"
            while answered[0] < 1000:               # the pipeline is under way
                time.sleep(0.01)
            worst = 0.0
            for n in range(20):
                started = time.monotonic()
                assert other.command(f"N{n}", "NOOP")[-1].startswith(f"N{n} OK".encode())
                worst = max(worst, time.monotonic() - started)
            started = time.monotonic()
            _append(other, _message(9))
            assert idler.read_line(timeout=5) == b"* 4 EXISTS"
            woken = time.monotonic() - started
        finally:
            stop.set()
            busy.join(30)
        assert answered[0] >= 1000
        assert worst < 0.25, f"a NOOP waited {worst:.3f} s behind the pipeline"
        assert woken < 1.0, f"IDLE woke after {woken:.3f} s"


def test_a_held_store_lock_never_blocks_the_loop(imap: InProcessImap) -> None:
    """The store's own threads (a STORE's deferred flag renames, POP3, the junk trainer)
    hold an account's lock too: a command of that account waits in a worker thread, and
    every other client goes on being answered meanwhile."""
    imap.engine.add_account("eve@example.test")
    account = imap.stores.open("dora@example.test")
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:                 # as the store's rename thread holds it
        lock = inline.StoreLock(account)
        assert lock.take()
        taken.set()
        release.wait(10)
        lock.give()

    with _selected(imap) as dora, ImapWire(imap.imap_port) as eve:
        eve.read_line()
        eve.command("L", 'LOGIN eve@example.test "correct horse battery"')
        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert taken.wait(5)
            dora.send_line("N NOOP")
            for n in range(10):
                started = time.monotonic()
                assert eve.command(f"E{n}", "NOOP")[-1].startswith(f"E{n} OK".encode())
                assert time.monotonic() - started < 0.25
            with pytest.raises(TimeoutError):
                dora.read_line(timeout=0.3)             # waiting for the lock, in a thread
        finally:
            release.set()
            holder.join(10)
        assert dora.read_line(timeout=5) == b"N OK NOOP completed"
