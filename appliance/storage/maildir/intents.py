"""Intent records that make a COPY or MOVE of several files all-or-nothing across crashes.

A COPY links each message into the target's cur/ and a MOVE then unlinks the sources; the
index learns of it in one transaction after the last file step. Before the first link the
operation is written down in the index's `intents` table (kind, source folder and file
names, target folder and the names the links get) and committed; the transaction that
commits the result deletes it. So an intent found later means the result was never
committed and the client never got its OK: the operation is undone, whatever its kind
(RFC 9051 6.4.7: an unsuccessful COPY leaves the target as it was; RFC 6851 3.3: a MOVE is
one step, the message is never in both folders nor in neither). Undoing a MOVE first links
back every source the MOVE had unlinked (from its target link: same inode), fsyncs, then
unlinks the target links and fsyncs; run twice, it does nothing more.

Files are found by their base name (before ":2,"), so a link renamed for new flags by
another tool is still found. Until an intent is settled a reconciliation leaves files with
its base names alone (`in_flight`): neither adopted as new messages nor expunged.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.core import log
from appliance.storage.maildir import files
from appliance.storage.maildir.folders import folder_path
from appliance.storage.maildir.index import write
from appliance.storage.maildir.locks import IntentGuard

COPY, MOVE = "copy", "move"
_SUBDIRS = ("cur", "new")


@dataclass(frozen=True)
class Intent:
    """One COPY or MOVE whose result is not committed yet."""

    id: int
    kind: str                                   # COPY or MOVE
    source: str                                 # normalised folder names
    target: str
    files: tuple[tuple[str, str, str], ...]     # (source subdir, source name, target name)


def record(conn: sqlite3.Connection, kind: str, source: str, target: str,
           names: Iterable[tuple[str, str, str]]) -> int:
    """Write an intent (inside the caller's write transaction, which must commit before the
    first link); its id."""
    text = json.dumps([list(entry) for entry in names], separators=(",", ":"))
    cursor = conn.execute("INSERT INTO intents (kind, source, target, files) "
                          "VALUES (?, ?, ?, ?)", (kind, source, target, text))
    return int(cursor.lastrowid or 0)


def forget(conn: sqlite3.Connection, intent_id: int) -> None:
    """Delete an intent: in the transaction that commits the result, or after an undo."""
    conn.execute("DELETE FROM intents WHERE id = ?", (intent_id,))


def pending(conn: sqlite3.Connection, ignore: Iterable[int] = ()) -> list[Intent]:
    """The intents in the index, except `ignore` (this object's own, under way)."""
    skip = set(ignore)
    ids = [int(row[0]) for row in conn.execute("SELECT id FROM intents")]
    if not any(i not in skip for i in ids):
        return []                              # the common case: one cheap query
    rows = conn.execute("SELECT id, kind, source, target, files FROM intents ORDER BY id")
    return [from_row(row) for row in rows if int(row[0]) not in skip]


def from_row(row: tuple[object, ...]) -> Intent:
    """An intent row; entries that are not plain file names are dropped (never unlink a
    path a damaged row makes up)."""
    intent_id, kind, source, target, text = row
    try:
        entries = json.loads(str(text))
    except ValueError:
        entries = []
    if not isinstance(entries, list):
        entries = []
    names = tuple((str(e[0]), str(e[1]), str(e[2])) for e in entries
                  if isinstance(e, list) and len(e) == 3 and e[0] in _SUBDIRS
                  and _plain(e[1]) and _plain(e[2]))
    return Intent(int(str(intent_id)), str(kind), str(source), str(target), names)


def _plain(name: object) -> bool:
    return (isinstance(name, str) and bool(name) and "/" not in name and "\0" not in name
            and not name.startswith("."))


def base(filename: str) -> str:
    return filename.partition(":")[0]


def in_flight(intents: Iterable[Intent]) -> frozenset[str]:
    """Base names a reconciliation must leave alone while these intents stand."""
    return frozenset(base(name) for intent in intents
                     for _, source, target in intent.files for name in (source, target))


def settle(conn: sqlite3.Connection, root: Path, guard: IntentGuard,
           own: Iterable[int]) -> tuple[frozenset[str], bool]:
    """Inside a write transaction: undo the intents in the index, but only when no COPY or
    MOVE is under way anywhere (so they are all a crash's; `own` are this object's, under
    way). (Base names of the intents left standing, whether any was undone.)"""
    standing = pending(conn, own)
    if not standing or not guard.none_running():
        return in_flight(standing), False
    left = []
    for intent in standing:
        try:
            undo(root, intent)
        except OSError as exc:          # EIO, EACCES: kept, and tried again next time
            log.error("mailbox.intent_undo_failed", exc, root=str(root), kind=intent.kind,
                      source=intent.source, target=intent.target)
            left.append(intent)
            continue
        forget(conn, intent.id)
    return in_flight(left), True


def abandon(conn: sqlite3.Connection, root: Path, intent: Intent) -> None:
    """Undo the intent of a call that failed (its result rolled back) in a transaction of
    its own; if that fails too, the intent stays for the next `settle`."""
    try:
        with write(conn):
            undo(root, intent)
            forget(conn, intent.id)
    except (OSError, sqlite3.Error) as exc:
        log.error("mailbox.intent_undo_failed", exc, root=str(root), kind=intent.kind,
                  source=intent.source, target=intent.target)


def undo(root: Path, intent: Intent) -> None:
    """Put the files back as they were before the operation, durably (every directory
    changed is fsynced). The caller holds the index write lock and then forgets the intent.
    """
    source_dir = folder_path(root, intent.source)
    target_dir = folder_path(root, intent.target)
    links = _by_base(target_dir)
    if intent.kind != COPY:         # a MOVE (or a damaged kind: restoring is the safe side)
        present = _by_base(source_dir)
        restored: list[Path] = []
        for subdir, source, target in intent.files:
            link = links.get(base(target))
            if base(source) not in present and link is not None:
                with contextlib.suppress(FileNotFoundError):   # the folder is gone
                    files.link_copy(link, source_dir, source, subdir)
                    restored.append(source_dir / subdir)
        files.sync_dirs(*restored)
    doomed = [links[b] for b in {base(target) for _, _, target in intent.files} if b in links]
    for path in doomed:
        files.unlink(path)
    files.sync_dirs(*(path.parent for path in doomed))
    log.event("mailbox.intent_undone", kind=intent.kind, source=intent.source,
              target=intent.target, files=len(intent.files), unlinked=len(doomed))


def _by_base(folder: Path) -> dict[str, Path]:
    """Every message file in the folder's cur/ and new/ by base name ({} if it is gone)."""
    found: dict[str, Path] = {}
    for subdir in _SUBDIRS:
        with contextlib.suppress(FileNotFoundError), os.scandir(folder / subdir) as entries:
            for entry in entries:
                if not entry.name.startswith("."):
                    found.setdefault(base(entry.name), Path(entry.path))
    return found
