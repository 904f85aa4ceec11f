"""One change check per command on the direct path (issue 4, fifth pass): the command's
closing sync reuses the check `_inline_lock` made in the same hold of the store's lock.
Over real sockets, with the real listeners and Maildir store in this process: every change
made elsewhere still reaches the next command (RFC 9051 7: unilateral updates), whether
another session made it or another tool dropped a file into the Maildir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.imap import ImapWire
from harness.imap_server import ADDRESS, InProcessImap, serving


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[InProcessImap]:
    with serving(tmp_path / "data", autologout=30.0) as running:
        yield running


def _append(wire: ImapWire, n: int) -> None:
    body = b"Subject: m%d\r\n\r\nbody\r\n" % n
    wire.send_line(f"A{n} APPEND INBOX {{{len(body)}+}}")
    wire.send(body + b"\r\n")
    assert wire.read_until_tagged(f"A{n}")[-1].startswith(f"A{n} OK".encode())


def _selected(imap: InProcessImap, messages: int) -> ImapWire:
    wire = imap.connect()
    for n in range(messages):
        _append(wire, n)
    assert wire.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert wire.command("W", "NOOP")[-1].startswith(b"W OK")
    return wire


def _jobs(imap: InProcessImap) -> int:
    return imap.config.thread_jobs.total


def test_a_file_dropped_by_another_tool_reaches_the_next_noop(imap: InProcessImap) -> None:
    maildir = imap.engine.maildir(ADDRESS)
    with _selected(imap, 2) as wire:
        for round_ in range(5):
            before = _jobs(imap)
            assert wire.command("N", "NOOP") == [b"N OK NOOP completed"]
            assert _jobs(imap) == before                # answered on the loop
            (maildir / "new" / f"170000000{round_}.M1P1.othertool").write_bytes(
                b"Subject: dropped\r\n\r\nx\r\n")
            reply = wire.command("M", "NOOP")
            assert reply[0] == f"* {3 + round_} EXISTS".encode()    # then RECENT (rev1)
            assert reply[-1] == b"M OK NOOP completed"
            # That sync moved the file from new/ to cur/ after its token was taken: one
            # more look in a thread, then the loop again.
            assert wire.command("P", "NOOP") == [b"P OK NOOP completed"]


def test_another_sessions_changes_reach_each_next_command(imap: InProcessImap) -> None:
    with _selected(imap, 3) as wire, imap.connect() as other:
        assert other.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
        for round_ in range(4):
            sign = "+" if round_ % 2 == 0 else "-"
            assert wire.command("N", "UID FETCH 2 (BODY.PEEK[])")[-1].startswith(b"N OK")
            assert other.command("T", f"STORE 2 {sign}FLAGS.SILENT (\\Flagged)")[-1] \
                .startswith(b"T OK")
            reply = wire.command("M", "NOOP")
            assert reply[0].startswith(b"* 2 FETCH (UID 2 FLAGS (")
            assert (b"\\Flagged" in reply[0]) == (sign == "+")
            assert reply[-1] == b"M OK NOOP completed"
            assert wire.command("K", "NOOP") == [b"K OK NOOP completed"]   # once only
        _append(other, 9)
        reply = wire.command("E", "UID FETCH 1 (UID)")   # EXISTS may come with a FETCH
        assert b"* 4 EXISTS" in reply
        assert reply[-1].startswith(b"E OK")
