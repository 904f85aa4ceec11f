"""Maildir <-> index reconciliation for one folder, and the in-process state it keeps.

The Maildir is the truth: files in new/ move to cur/ (gaining `:2,`), files without a row get
UIDs in (mtime, name) order, rows whose file is gone are expunged, and a file renamed by any
tool changes the message's flags. `FolderState` (`state`) caches the folder in memory; it is
refreshed from the index by MODSEQ (only what changed) and from the disk only when new/ or
cur/ changed.

When is a directory's mtime ("stamp") proof that nothing changed since a listing? The kernel
stamps a change with a coarse clock (one tick is several ms), so a second change in the same
tick leaves the mtime as it was. Three kinds of writer change a folder:

- our own processes: every change to cur/ and every new/ -> cur/ move happens under the
  index write lock, and its rows are committed in the same transaction, so another process
  learns of it from the index (`data_version`, then `refresh` by MODSEQ, file names
  included) whatever the mtime says;
- SMTP delivery (`MaildirStore.deliver`) adds files to new/ without the index lock;
- other tools (mutt, Dovecot, a shell) change new/ and cur/ without any lock.

So an mtime can only be trusted when no lock-less writer could have changed the directory in
the same tick after we looked. Two ways give that:

1. The window rule (`DIRTY_WINDOW`): an mtime older than the window when the listing
   started cannot be shared with a later change.
2. A mark (`mark_directory`): we set the directory's mtime to one nanosecond past what the
   kernel stamped. A later change is stamped with the time of that change, never the mark:
   a coarse clock's values are whole ticks apart (the same tick gives the old value, the
   next one is ms later), and a fine-grained clock (Linux 6.13 multigrain timestamps) has
   moved on by the microseconds the stat and utime took. So ANY change after the mark, by
   anyone, gives a different mtime. A reconciliation marks new/ and cur/ right after moving
   new/ to cur/ and before listing: what changed before the mark is in the listing, what
   changes after it moves the mtime. Its stamp is trusted at once, even a fresh one.
   Only a fresh mtime is marked (an old one is trusted anyway), so two processes listing
   one folder cannot keep moving each other's stamps for longer than the window.

After a change of our own (STORE, APPEND, COPY, EXPUNGE, inside the index transaction) we
know exactly what we changed in cur/ and have applied it to `FolderState`; we then mark cur/
and keep the mark as its stamp (`own_change_stamp`), so the next sync takes the fast path
instead of listing 10,000 files. This holds only when the stamp was trusted and matched the
disk at the start of the transaction. new/ is not re-stamped: we keep the value of the last
listing, so a delivery (or a move out of new/ of ours) still forces a listing. The one gap
left: another tool renaming in cur/ *during* our own batch (between its start and the mark,
a few ms, while we hold the index lock) is hidden until cur/ changes again; our processes
and deliveries are never hidden. If the file system keeps no nanoseconds (the mark reads back
different), stamps fall back to rule 1. Marking changes only the directory's mtime, which
other Maildir readers (Dovecot, mutt) just take as "something changed".

Deferred flag renames (`dirty`, `renames`): a STORE changes no file, so it keeps its stamp
as it is. Its renames follow in batches, and each batch is an own change like the above:
under the account lock and the index write lock it checks that cur/ still shows the stamp
this process trusts (else the stamp is dropped: something else changed cur/ since, and the
next sync lists), renames, and marks cur/ again. So our own deferred renames never force a
listing of 10,000 files on the next command, and a tool's change before a batch is seen;
a tool's change *during* a batch (under a millisecond) is the gap named above. A listing
(`reconcile`) never sees a marked row: whoever lists completes the folder's renames first
in the same transaction (`dirty.complete`), so every row's name is the file's name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.storage.mailbox_api import MessageMeta
from appliance.storage.maildir import flags as names
from appliance.storage.maildir.state import FolderState as FolderState
from appliance.storage.maildir.state import Stamp as Stamp

# A directory whose mtime is this close to the start of a listing may change again within
# the same timestamp tick (the kernel stamps with a coarse clock), so its stamp is not
# trusted and the next sync lists again. Local file systems tick every few milliseconds.
DIRTY_WINDOW = 0.1


_FOLDER_COLUMNS = "id, uidvalidity, uidnext, highest_modseq, recent_uid, special_use"
_MESSAGE_COLUMNS = "uid, subdir, filename, flags, modseq, internal_date, size, dirty"


def folder_row(conn: sqlite3.Connection, name: str) -> tuple[object, ...] | None:
    row: tuple[object, ...] | None = conn.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE name = ?", (name,)).fetchone()  # noqa: S608
    return row


def load_state(conn: sqlite3.Connection, name: str, path: Path,
               row: tuple[object, ...]) -> FolderState:
    """Read a folder and all its message rows from the index."""
    folder_id, uidvalidity, uidnext, modseq, recent_uid, special_use = row
    state = FolderState(int(str(folder_id)), name, path, int(str(uidvalidity)),
                        int(str(uidnext)), int(str(modseq)), int(str(recent_uid)),
                        None if special_use is None else str(special_use))
    rows = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608
                        "WHERE folder_id = ? ORDER BY uid", (state.id,))
    for message in rows:
        _put_row(state, message)
    return state


def _put_row(state: FolderState, row: tuple[object, ...]) -> None:
    uid, subdir, filename, flag_text, modseq, internal_date, size, mark = row
    meta = MessageMeta(int(str(uid)), parse_flags(str(flag_text)), int(str(modseq)),
                       float(str(internal_date)), int(str(size)))
    state.put(meta, str(subdir), str(filename), names.parse_mark(mark))


def parse_flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


def format_flags(flags: frozenset[str]) -> str:
    return " ".join(sorted(flags))


def refresh(conn: sqlite3.Connection, state: FolderState) -> FolderState | None:
    """Apply what other connections changed in the index since `state` (by MODSEQ).
    None when the folder row is gone or was replaced (the caller reloads or fails)."""
    row = folder_row(conn, state.name)
    if row is None or int(str(row[0])) != state.id or int(str(row[1])) != state.uidvalidity:
        return None
    old_modseq = state.highest_modseq
    state.uidnext, state.highest_modseq = int(str(row[2])), int(str(row[3]))
    state.recent_uid = int(str(row[4]))
    state.special_use = None if row[5] is None else str(row[5])
    if state.highest_modseq == old_modseq:
        return state
    for message in conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608
                                "WHERE folder_id = ? AND modseq > ?", (state.id, old_modseq)):
        _put_row(state, message)
    for (uid,) in conn.execute("SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ?",
                               (state.id, old_modseq)):
        state.drop(int(uid))
    return state


def stamp_of(path: Path) -> Stamp:
    """The mtimes of new/ and cur/ (FileNotFoundError when the folder is gone)."""
    folder = os.fspath(path)
    return os.stat(folder + "/new").st_mtime_ns, os.stat(folder + "/cur").st_mtime_ns


def mark_directory(directory: str) -> int | None:
    """Set `directory`'s mtime one nanosecond past the kernel's stamp, a value no later
    change can produce (see the module docstring); the mark, or None if it did not hold
    (no nanoseconds on this file system, not our directory, a read-only mount)."""
    try:
        now = os.stat(directory)
        mark = now.st_mtime_ns + 1
        os.utime(directory, ns=(now.st_atime_ns, mark))
        return mark if os.stat(directory).st_mtime_ns == mark else None
    except FileNotFoundError:
        raise
    except OSError:
        return None


def own_change_stamp(path: Path, before: Stamp | None) -> Stamp | None:
    """The stamp to keep after a change of our own to cur/, made inside the index write
    transaction; `before` is the trusted stamp that matched the disk when it began (None:
    there was none, list next time). new/ keeps its listed value: if anything touched
    new/ meanwhile, the next sync lists."""
    if before is None:
        return None
    folder = os.fspath(path)
    mark = mark_directory(folder + "/cur")
    if mark is None or os.stat(folder + "/new").st_mtime_ns != before[0]:
        return None
    return before[0], mark


@dataclass(frozen=True)
class _OnDisk:
    subdir: str
    filename: str


def reconcile(conn: sqlite3.Connection, state: FolderState, keywords: list[str],
              in_flight: frozenset[str] = frozenset()) -> None:
    """Bring the index (inside the caller's write transaction) and `state` up to the disk.
    The folder's deferred flag renames are done before (`dirty.complete`).

    Files and rows whose base name is `in_flight` (a COPY or MOVE not settled yet, see
    `intents`) are left as they are, and the folder is listed again next time."""
    _move_new_to_cur(state.path)
    marks = _mark_fresh(os.fspath(state.path))
    started = time.time()
    stamp = stamp_of(state.path)
    unmatched = _list(state.path, {file: uid for uid, file in state.files.items()})
    held = False
    if unmatched.files or unmatched.rows:
        held = _apply(conn, state, keywords, unmatched, in_flight)
    # Each mtime is trusted if it is still our mark, or old enough (module docstring).
    trusted = not held and all(mtime == mark or started - mtime / 1e9 > DIRTY_WINDOW
                               for mtime, mark in zip(stamp, marks, strict=True))
    state.stamp = stamp if trusted else None


def _mark_fresh(folder: str) -> tuple[int | None, int | None]:
    """Mark new/ and cur/ when their mtime is too fresh for rule 1 (an old one is trusted
    as it is; marking it would only make other processes list again)."""
    limit = time.time() - DIRTY_WINDOW

    def mark(path: str) -> int | None:
        return mark_directory(path) if os.stat(path).st_mtime_ns / 1e9 >= limit else None

    return mark(folder + "/new"), mark(folder + "/cur")


def _apply(conn: sqlite3.Connection, state: FolderState, keywords: list[str],
           unmatched: _Unmatched, in_flight: frozenset[str]) -> bool:
    """Write what the listing found; True when something in flight was held back."""
    changes = _Changes(conn, state)
    gone = set(unmatched.rows.values())
    known = {_base(name) for uid, (_, name) in state.files.items() if uid not in gone}
    arrivals: dict[str, _OnDisk] = {}
    held = False
    for subdir, filename in unmatched.files:
        base = _base(filename)
        if base in in_flight:
            held = True
        elif base not in known:               # a second file of one message is left alone
            arrivals.setdefault(base, _OnDisk(subdir, filename))
    for (_, filename), uid in unmatched.rows.items():
        found = arrivals.pop(_base(filename), None)
        if found is not None:
            changes.renamed(uid, found, keywords)
        elif _base(filename) in in_flight:
            held = True
        else:
            changes.expunge(uid)
    changes.add_new(arrivals, keywords)
    changes.finish()
    return held


def _base(filename: str) -> str:
    return filename.partition(":")[0]


def _move_new_to_cur(path: Path) -> None:
    """maildir(5): a reader moves new/ messages to cur/, adding the info `:2,`."""
    with os.scandir(path / "new") as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            target = entry.name if ":" in entry.name else names.file_name(entry.name, "")
            with contextlib.suppress(FileNotFoundError):   # another reader took it
                os.rename(entry.path, path / "cur" / target)


@dataclass
class _Unmatched:
    files: list[tuple[str, str]]                 # on disk, but no row has this name
    rows: dict[tuple[str, str], int]             # rows whose file name is not on disk


def _list(path: Path, known: dict[tuple[str, str], int]) -> _Unmatched:
    """Match the files in cur/ and new/ against the names the rows know (`known` is used up)."""
    files: list[tuple[str, str]] = []
    for subdir in ("cur", "new"):
        with os.scandir(path / subdir) as entries:
            for entry in entries:
                key = (subdir, entry.name)
                if known.pop(key, None) is None and not entry.name.startswith("."):
                    files.append(key)
    return _Unmatched(files, known)


class _Changes:
    """The writes of one reconciliation; they all share one new MODSEQ (RFC 7162 3.1.1)."""

    def __init__(self, conn: sqlite3.Connection, state: FolderState) -> None:
        self.conn, self.state = conn, state
        self.modseq = state.highest_modseq + 1
        self.used = False

    def expunge(self, uid: int) -> None:
        record_expunged(self.conn, self.state, [uid], self.modseq)
        self.used = True

    def renamed(self, uid: int, found: _OnDisk, keywords: list[str]) -> None:
        old = self.state.metas[uid]
        letters = names.split_name(found.filename)[1] or ""
        unlettered = old.flags - names.lettered(old.flags, keywords)
        flags = names.letters_to_flags(letters, keywords) | unlettered
        meta = MessageMeta(uid, flags, self.modseq, old.internal_date, old.size)
        self.conn.execute("UPDATE messages SET subdir = ?, filename = ?, flags = ?, modseq = ? "
                          "WHERE folder_id = ? AND uid = ?",
                          (found.subdir, found.filename, format_flags(flags), self.modseq,
                           self.state.id, uid))
        self.state.put(meta, found.subdir, found.filename)
        self.used = True

    def add_new(self, disk: dict[str, _OnDisk], keywords: list[str]) -> None:
        arrivals = []
        for base, found in disk.items():
            path = self.state.path / found.subdir / found.filename
            with contextlib.suppress(FileNotFoundError):
                arrivals.append((path.stat().st_mtime, found.filename, base, found))
        for mtime, filename, base, found in sorted(arrivals):
            with contextlib.suppress(FileNotFoundError):
                size = message_size(self.state.path / found.subdir / filename, base)
                letters = names.split_name(filename)[1] or ""
                flags = names.letters_to_flags(letters, keywords)
                insert_message(self.conn, self.state, base, found.subdir, filename,
                               MessageMeta(self.state.uidnext, flags, self.modseq, mtime, size))
                self.used = True

    def finish(self) -> None:
        if self.used:
            set_counters(self.conn, self.state, self.modseq)


def message_size(path: Path, base: str) -> int:
    """RFC822.SIZE: from `,W=` in the name, else counted from the file."""
    _, crlf = names.sizes_in_name(base)
    return crlf if crlf is not None else names.crlf_size(path.read_bytes())


def insert_message(conn: sqlite3.Connection, state: FolderState, base: str, subdir: str,
                   filename: str, meta: MessageMeta) -> None:
    """Add a row for a message with UID `meta.uid` (== state.uidnext, which then moves on)."""
    insert_messages(conn, state, [(base, subdir, filename, meta)])


def insert_messages(conn: sqlite3.Connection, state: FolderState,
                    added: Sequence[tuple[str, str, str, MessageMeta]]) -> None:
    """`insert_message` for a batch of (base, subdir, filename, meta), one executemany."""
    conn.executemany("INSERT INTO messages (folder_id, uid, base, subdir, filename, flags, "
                     "modseq, internal_date, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(state.id, meta.uid, base, subdir, filename, format_flags(meta.flags),
                       meta.modseq, meta.internal_date, meta.size)
                      for base, subdir, filename, meta in added])
    for _, subdir, filename, meta in added:
        state.put(meta, subdir, filename)
        state.uidnext = max(state.uidnext, meta.uid + 1)


def record_expunged(conn: sqlite3.Connection, state: FolderState, uids: list[int],
                    modseq: int) -> None:
    conn.executemany("DELETE FROM messages WHERE folder_id = ? AND uid = ?",
                     [(state.id, uid) for uid in uids])
    conn.executemany("DELETE FROM cache WHERE folder_id = ? AND uid = ?",
                     [(state.id, uid) for uid in uids])
    conn.executemany("INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)",
                     [(state.id, uid, modseq) for uid in uids])
    for uid in uids:
        state.drop(uid)


def set_counters(conn: sqlite3.Connection, state: FolderState, modseq: int) -> None:
    """Store UIDNEXT and the new HIGHESTMODSEQ of the folder after a change."""
    state.highest_modseq = max(state.highest_modseq, modseq)
    conn.execute("UPDATE folders SET uidnext = ?, highest_modseq = ? WHERE id = ?",
                 (state.uidnext, state.highest_modseq, state.id))
