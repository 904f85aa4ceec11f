"""Commands answered right in the protocol callback (`ImapConnection.data_received`, the
direct path) over real sockets, with the real listeners, login guard and Maildir store in
this process (`InProcessImap`): which commands are answered there, that pipelined commands
keep their order when one of them must go to the connection's task (APPEND with a literal,
a STORE, LOGOUT), that an answer begun there and finished in a worker thread is whole, that
activity answered there keeps the autologout timer from firing, that TLS works the same, and
that nothing is answered there before login.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.imap import responses as r
from appliance.imap.server_plans import BYE_AUTOLOGOUT
from harness.engine import loopback_context
from harness.imap import ImapWire
from harness.imap_server import ADDRESS, AUTOLOGOUT, InProcessImap, serving


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[InProcessImap]:
    with serving(tmp_path / "data", autologout=30.0) as running:
        yield running


def _message(n: int, size: int = 200) -> bytes:
    line = b"y" * 70 + b"\r\n"
    return b"Subject: d%d\r\n\r\n" % n + line * max(1, size // len(line))


def _selected(imap: InProcessImap, messages: int = 3) -> ImapWire:
    wire = imap.connect()
    for n in range(messages):
        body = _message(n)
        wire.send_line(f"A{n} APPEND INBOX {{{len(body)}+}}")
        wire.send(body + b"\r\n")
        assert wire.read_until_tagged(f"A{n}")[-1].startswith(f"A{n} OK".encode())
    assert wire.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert wire.command("W", "NOOP")[-1].startswith(b"W OK")     # takes the change token
    return wire


def _direct(imap: InProcessImap) -> int:
    return imap.config.thread_jobs.direct


def test_noop_and_fetches_are_answered_in_the_callback(imap: InProcessImap) -> None:
    with _selected(imap) as wire:
        before, jobs = _direct(imap), imap.config.thread_jobs.total
        assert wire.command("N", "NOOP") == [b"N OK NOOP completed"]
        whole = wire.command("B", "UID FETCH 2 (BODY.PEEK[])")
        flags = wire.command("F", "FETCH 1:* (FLAGS UID)")
        assert _direct(imap) == before + 3
        assert imap.config.thread_jobs.total == jobs
    assert _message(1) in whole[0]
    assert whole[-1].startswith(b"B OK")
    assert [line.split(b" (")[0] for line in flags[:-1]] == [b"* 1 FETCH", b"* 2 FETCH",
                                                            b"* 3 FETCH"]


def test_pipelined_commands_keep_their_order_around_ones_for_the_task(
        imap: InProcessImap) -> None:
    """One packet: answered in the callback, then an APPEND with a literal and a STORE
    (the task), then more for the callback, then LOGOUT: every answer in order."""
    body = _message(9)
    with _selected(imap) as wire:
        wire.send(b"P1 NOOP\r\nP2 FETCH 1 (FLAGS)\r\n"
                  + b"P3 APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n"
                  + b"P4 STORE 1 +FLAGS (\\Flagged)\r\nP5 UID FETCH 1:* (UID)\r\n"
                  + b"P6 NOOP\r\nP7 LOGOUT\r\n")
        lines = wire.read_until_tagged("P7")
    tagged = [line.split(b" ")[0] for line in lines if line.startswith(b"P")]
    assert tagged == [b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7"]
    assert all(line.split(b" ")[1] == b"OK" for line in lines if line.startswith(b"P"))
    assert b"* 4 EXISTS" in lines                   # the APPEND, reported by P4 or later
    assert any(b"\\Flagged" in line for line in lines if line.startswith(b"* 1 FETCH"))
    assert lines[-2] == r.untagged_bye(r.LOGGING_OUT).rstrip(b"\r\n")


def test_an_answer_begun_in_the_callback_is_finished_whole(imap: InProcessImap) -> None:
    size = 2 * 1024 * 1024
    with _selected(imap, messages=0) as wire:
        for n in range(4):
            body = _message(n, size)
            wire.send_line(f"A{n} APPEND INBOX {{{len(body)}+}}")
            wire.send(body + b"\r\n")
            assert wire.read_until_tagged(f"A{n}")[-1].startswith(f"A{n} OK".encode())
        assert wire.command("N", "NOOP")[-1].startswith(b"N OK")
        jobs = imap.config.thread_jobs.total
        reply = wire.command("F", "FETCH 1:* (BODY.PEEK[])")
        assert imap.config.thread_jobs.total > jobs      # 8 MB: past the inline budget
        assert reply[-1] == b"F OK FETCH completed"
        assert [_message(n, size) in line for n, line in enumerate(reply[:-1])] == [True] * 4
        assert wire.command("M", "NOOP") == [b"M OK NOOP completed"]


def test_commands_answered_in_the_callback_keep_the_session_alive(tmp_path: Path) -> None:
    """The task waits with the autologout timer it armed before; activity answered in the
    callback must move that timer on (autologout is 1 s here)."""
    imap = InProcessImap(tmp_path / "data")
    try:
        with _selected(imap) as wire:
            before = _direct(imap)
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 3 * AUTOLOGOUT:
                assert wire.command(f"K{n}", "NOOP") == [f"K{n} OK NOOP completed".encode()]
                n += 1
                time.sleep(AUTOLOGOUT / 4)
            assert _direct(imap) >= before + n - 1
            # then silence logs it out
            assert wire.read_line(timeout=3 * AUTOLOGOUT) == BYE_AUTOLOGOUT.rstrip(b"\r\n")
            assert wire.is_closed()
    finally:
        imap.stop()


def test_nothing_is_answered_in_the_callback_before_login(imap: InProcessImap) -> None:
    with ImapWire(imap.imap_port) as wire:
        assert wire.read_line() is not None
        assert wire.command("C", "CAPABILITY")[-1].startswith(b"C OK")
        assert wire.command("N", "NOOP") == [b"N OK NOOP completed"]
        assert _direct(imap) == 0
        reply = wire.command("L", f'LOGIN {ADDRESS} "correct horse battery"')
        assert reply[-1].startswith(b"L OK")
        assert wire.command("M", "NOOP") == [b"M OK NOOP completed"]
        assert _direct(imap) == 1


def test_the_callback_answers_over_tls_too(imap: InProcessImap) -> None:
    with ImapWire(imap.imaps_port, tls=loopback_context(imap.engine)) as wire:
        assert wire.read_line() is not None
        assert wire.command("L", f'LOGIN {ADDRESS} "correct horse battery"')[-1].startswith(
            b"L OK")
        assert wire.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
        assert wire.command("W", "NOOP")[-1].startswith(b"W OK")
        before = _direct(imap)
        assert wire.command("N", "NOOP") == [b"N OK NOOP completed"]
        assert _direct(imap) == before + 1
