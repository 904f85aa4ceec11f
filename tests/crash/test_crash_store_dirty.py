"""SIGKILL right after a STORE's OK, before its deferred flag renames are done.

A STORE commits its rows (the new flags, each row marked with the name its file has now)
and answers OK; the renames follow in the background (`appliance/storage/maildir/dirty.py`).
Here the engine is SIGKILLed the moment the OK of a STORE on 3,000 messages arrives (the
renames of 3,000 files take tens of milliseconds, so most of them are still to do). Before
the restart the index alone must already hold every OK'd flag; after it (the restarted
engine completes the marked rows when it opens the account) IMAP must report them, and at
the end the index and the file names must agree: every row's name spells its flags, no mark
is left, a row for every file and a file for every row.

Each round alternates +FLAGS/-FLAGS (\\Flagged) and checks that the kill caught renames
still pending (files under their old names, or marks left); at least one round must, or the
test would not be testing what it names.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from appliance.storage.maildir import flags as names
from appliance.storage.maildir.index import INDEX_NAME
from appliance.storage.maildir.stores import MaildirStores
from harness.crash import killed_if_left_running
from harness.engine import EngineProcess
from harness.imap import logged_in_wire

ACCOUNT = "dirty@dirtycrash.test"
COUNT = 3000
ROUNDS = 4


def fill(maildir: Path) -> None:
    """COUNT messages in cur/, all \\Seen, as a delivery and an earlier sync leave them."""
    for i in range(COUNT):
        data = b"From: a%d@example.org\nSubject: message %d\n\nbody %d\n" % (i, i, i)
        name = f"{1_700_000_000 + i}.M{i}P1.host,S={len(data)},W={len(data) + 4}:2,S"
        (maildir / "cur" / name).write_bytes(data)


def index_rows(maildir: Path) -> list[tuple[str, str, str | None]]:
    """(filename, flags, dirty mark) of every INBOX row, read-only, as the index is now."""
    with sqlite3.connect(f"file:{maildir / INDEX_NAME}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT m.filename, m.flags, m.dirty FROM messages m JOIN folders f "
                            "ON f.id = m.folder_id WHERE f.name = 'INBOX'").fetchall()
    return [(str(name), str(flags), None if mark is None else str(mark))
            for name, flags, mark in rows]


def flagged_names(maildir: Path) -> int:
    return sum("F" in (names.split_name(n)[1] or "") for n in os.listdir(maildir / "cur"))


def store_then_kill(engine: EngineProcess, flagged: bool, tag: str) -> None:
    wire = logged_in_wire(engine, ACCOUNT)
    try:
        assert wire.command("S0", "SELECT INBOX")[-1].startswith(b"S0 OK")
        sign = "+" if flagged else "-"
        wire.send_line(f"{tag} STORE 1:{COUNT} {sign}FLAGS.SILENT (\\Flagged)")
        reply = wire.read_until_tagged(tag, timeout=60)
        assert reply[-1].startswith(f"{tag} OK".encode()), reply[-3:]
        engine.kill()                    # the OK is in: the renames may not be
    finally:
        wire.close()


def imap_flags(engine: EngineProcess) -> list[bytes]:
    with logged_in_wire(engine, ACCOUNT) as wire:
        assert wire.command("S0", "SELECT INBOX")[-1].startswith(b"S0 OK")
        lines = wire.command("F1", "FETCH 1:* (FLAGS)")
        assert lines[-1].startswith(b"F1 OK"), lines[-1]
        return [line for line in lines if line.startswith(b"* ") and b" FETCH " in line]


def disk_agrees(maildir: Path, flagged: bool) -> list[str]:
    """The final check with the engine stopped: the index against cur/."""
    problems = []
    rows = index_rows(maildir)
    on_disk = set(os.listdir(maildir / "cur")) | set(os.listdir(maildir / "new"))
    indexed = {name for name, _, _ in rows}
    problems += [f"file without row {n}" for n in sorted(on_disk - indexed)[:5]]
    problems += [f"row without file {n}" for n in sorted(indexed - on_disk)[:5]]
    for name, flag_text, mark in rows:
        spelled = names.letters_to_flags(names.split_name(name)[1] or "", [])
        if mark is not None or spelled != frozenset(flag_text.split()):
            problems.append(f"{name}: flags {flag_text!r}, mark {mark!r}")
        if ("\\Flagged" in flag_text.split()) != flagged:
            problems.append(f"{name}: {flag_text!r} after the last OK'd STORE")
    return problems[:20]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_right_after_store_ok_keeps_every_flag(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", log__level="info")
    engine.add_domain("dirtycrash.test")
    maildir = engine.add_account(ACCOUNT)
    fill(maildir)
    caught: list[tuple[int, int]] = []          # per round: (old names left, marks left)
    with killed_if_left_running(engine):
        for round_number in range(ROUNDS):
            flagged = round_number % 2 == 0
            engine.start()
            store_then_kill(engine, flagged, f"T{round_number}")
            rows = index_rows(maildir)                       # the OK'd STORE is in the index
            assert all(("\\Flagged" in flags.split()) == flagged for _, flags, _ in rows)
            assert len(rows) == COUNT
            on_disk = flagged_names(maildir)
            caught.append((COUNT - on_disk if flagged else on_disk,
                           sum(mark is not None for _, _, mark in rows)))
            engine.start()                                   # opens the account: completes
            fetched = imap_flags(engine)
            assert len(fetched) == COUNT
            assert all((b"\\Flagged" in line) == flagged for line in fetched), fetched[:3]
            assert engine.stop() == 0
            assert disk_agrees(maildir, flagged) == []
            assert flagged_names(maildir) == (COUNT if flagged else 0)
    print(f"(old names, marks) left by each kill: {caught}")
    assert any(old or marks for old, marks in caught), (
        f"no kill caught a pending rename: {caught}")
    stores = MaildirStores(engine.data_dir, engine.directory)   # a direct open agrees too
    try:
        snapshot = stores.open(ACCOUNT).sync("INBOX")
        assert len(snapshot.messages) == COUNT
        assert all("\\Flagged" not in m.flags for m in snapshot.messages)   # ROUNDS is even
    finally:
        stores.close()
