"""Deferred flag renames ("dirty" rows): a STORE commits the new flags (fsync'ed WAL: the
OK is durable) with the name each file must get, and marks each row with the name its file
has now (`messages.dirty`); the renames happen after the commit, off the reply path, in a
background job (`renames`), as Dovecot's index does for flags it has not written to the
files yet.

Who renames a dirty file, always holding the index write lock (so two never race and a
stale plan never renames a file back):

- the account's job, right after the STORE, in batches (`rename_batch`) that each take the
  account lock too, so the in-process state and its stamp stay exact (see `sync`); each
  batch fsyncs the directories and clears its rows' marks in the same transaction;
- any process before it writes to the folder (other than a STORE) or lists it
  (`complete`), and every process when it opens the account (a crash's leftovers): the
  flags the client was told are in the row, so the row wins over the old name.

So in every committed state a mark names where the file is (a mark whose clearing a power
cut lost names a file already renamed: `complete` just clears it on open). A STORE on a
row still marked therefore keeps the mark and only moves the target (`writes.store`, with
the marks read afresh: `marks`): flags changed twice before the job ran cost one rename,
or none when they are back to the file's name, and a STORE never waits for renames.

Readers look for a file under its row's name, then under the marked one
(`FolderState.file_strs`). A dirty file found under neither name was renamed or removed by
another tool after our commit (or between our sync and it): `complete` then finds it by
its base name. A rename is merged letter by letter with ours: each flag letter takes the
value whichever side changed it (a letter has two values, and both sides started from the
marked name, so the two changes never disagree), so neither our acknowledged STORE nor
the tool's change is lost; if the merge differs from the index, the row gets a new MODSEQ
and clients are told. A removed file is left to the listing that follows (an expunge).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.core import log
from appliance.storage.mailbox_api import MessageMeta
from appliance.storage.maildir import files
from appliance.storage.maildir import flags as names
from appliance.storage.maildir.sync import (
    FolderState,
    format_flags,
    parse_flags,
    set_counters,
)

# Renames per batch of the background job: each batch holds the account lock, so this is
# how long (about 10 ms here: the renames and one fsync) a command of the same account may
# wait. Each batch fsyncs cur/ once: with 256, a STORE on 1,000 messages cost four fsyncs,
# 2-3 ms more CPU than one (ext4 writes the directory blocks each batch dirtied again).
BATCH = 1024

_DIRTY_ROWS = ("SELECT uid, subdir, filename, dirty, flags, modseq FROM messages "
               "WHERE folder_id = ? AND dirty IS NOT NULL")
# A batch of the job: what it renames, in UID order (the partial index `messages_dirty`).
_BATCH_ROWS = ("SELECT uid, subdir, filename, dirty FROM messages "
               "WHERE folder_id = ? AND dirty IS NOT NULL AND uid > ? ORDER BY uid LIMIT ?")
# The batch's rows all renamed: the marks of its UID range cleared at once (in the same
# transaction as the SELECT, so the range holds exactly the batch's rows).
_CLEAR_RANGE = ("UPDATE messages SET dirty = NULL "
                "WHERE folder_id = ? AND dirty IS NOT NULL AND uid > ? AND uid <= ?")


@dataclass
class Completed:
    """What `complete` did: renamed files (cur/ changed), or left one for a listing."""

    renamed: bool = False
    relist: bool = False


def complete(conn: sqlite3.Connection, state: FolderState) -> Completed:
    """Inside a write transaction, with `state` fresh: do every pending flag rename of the
    folder, fsync, and clear the marks (module docstring)."""
    rows = conn.execute(_DIRTY_ROWS + " ORDER BY uid", (state.id,)).fetchall()
    done = Completed()
    if not rows:
        state.moved.clear()         # another process may have done them (no new MODSEQ)
        return done
    subdirs: set[str] = set()
    lost: list[tuple[object, ...]] = []
    with files.Mover(os.fspath(state.path)) as mover:
        for row in rows:
            old, new = names.parse_mark(row[3]), (str(row[1]), str(row[2]))
            moved = None if old is None else mover.move(old, new)
            if moved is None:
                lost.append(row)
            elif moved and old is not None:
                subdirs.update((old[0], new[0]))
    if lost:
        done.relist = _resolve(conn, state, lost, subdirs)
    files.sync_dirs(*(state.path / subdir for subdir in sorted(subdirs)))
    conn.execute("UPDATE messages SET dirty = NULL WHERE folder_id = ? AND dirty IS NOT NULL",
                 (state.id,))
    state.moved.clear()
    done.renamed = bool(subdirs)
    return done


def merge_letters(old: str, ours: str, theirs: str) -> str:
    """Info letters after two changes from `old`: ours and another tool's; a letter one side
    changed takes that side's value (both changed it: they agree, a letter has two values)."""
    before, mine, other = set(old), set(ours), set(theirs)
    return "".join(sorted((mine & other) | (mine - before) | (other - before)))


def _resolve(conn: sqlite3.Connection, state: FolderState, lost: list[tuple[object, ...]],
             subdirs: set[str]) -> bool:
    """Dirty rows whose file is under neither name: merge a tool's rename (module
    docstring); True when a file is gone (the listing that follows expunges it)."""
    on_disk = _by_base(state.path)
    keywords = names.read_keywords(state.path)
    modseq = state.highest_modseq + 1
    changed = gone = False
    for uid, _, filename, mark, flag_text, row_modseq in lost:
        base = str(filename).partition(":")[0]
        found, old = on_disk.get(base), names.parse_mark(mark)
        if found is None or old is None:
            gone = True
            continue
        letters = merge_letters(names.split_name(old[1])[1] or "",
                                names.split_name(str(filename))[1] or "",
                                names.split_name(found[1])[1] or "")
        name = names.file_name(base, letters)
        try:
            os.rename(state.path / found[0] / found[1], state.path / "cur" / name)
        except FileNotFoundError:
            gone = True
            continue
        subdirs.update((found[0], "cur"))
        now = parse_flags(str(flag_text))
        flags = names.letters_to_flags(letters, keywords) | (now - names.lettered(now, keywords))
        new_modseq = int(str(row_modseq)) if flags == now else modseq
        changed = changed or flags != now
        conn.execute("UPDATE messages SET subdir = 'cur', filename = ?, flags = ?, modseq = ? "
                     "WHERE folder_id = ? AND uid = ?",
                     (name, format_flags(flags), new_modseq, state.id, uid))
        meta = state.metas.get(int(str(uid)))
        if meta is not None:
            state.put(MessageMeta(meta.uid, flags, new_modseq, meta.internal_date, meta.size),
                      "cur", name)
        log.event("mailbox.flag_rename_merged", folder=state.name, uid=uid, found=found[1],
                  merged=name)
    if changed:
        set_counters(conn, state, modseq)
    return gone


def _by_base(folder: Path) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for subdir in ("cur", "new"):
        with os.scandir(folder / subdir) as entries:
            for entry in entries:
                if not entry.name.startswith("."):
                    found.setdefault(entry.name.partition(":")[0], (subdir, entry.name))
    return found


@dataclass
class Batch:
    """One batch of the background job."""

    last: int = 0                       # the highest UID looked at
    more: bool = False                  # there may be more dirty rows above `last`
    renamed: bool = False               # cur/ changed
    lost: bool = False                  # a file under neither name: a listing must decide


def rename_batch(conn: sqlite3.Connection, state: FolderState, after: int,
                 limit: int) -> Batch:
    """Inside a write transaction: up to `limit` dirty rows with UIDs above `after` renamed,
    fsync'ed and their marks cleared (so a mark in a committed row always names where the
    file is, unless a tool moved it: `marks`)."""
    rows = conn.execute(_BATCH_ROWS, (state.id, after, limit)).fetchall()
    batch = Batch(last=after, more=len(rows) == limit)
    done: list[tuple[int, int]] = []
    subdirs: set[str] = set()
    with files.Mover(os.fspath(state.path)) as mover:
        for uid, subdir, filename, mark in rows:
            batch.last = uid
            old = names.parse_mark(mark)
            moved = None if old is None else mover.move(old, (subdir, filename))
            if moved is None:
                batch.lost = True
                continue
            done.append((state.id, uid))
            if moved and old is not None:
                subdirs.update((old[0], subdir))
    files.sync_dirs(*(state.path / subdir for subdir in sorted(subdirs)))
    if batch.lost:                      # those keep their marks
        conn.executemany("UPDATE messages SET dirty = NULL WHERE folder_id = ? AND uid = ?",
                         done)
    elif done:                          # every marked row of the range: one statement
        conn.execute(_CLEAR_RANGE, (state.id, after, batch.last))
    moved_now = state.moved
    for _, uid in done:
        moved_now.pop(uid, None)
    batch.renamed = bool(subdirs)
    return batch


def marks(conn: sqlite3.Connection, state: FolderState) -> None:
    """Inside a write transaction: `state.moved` exactly as the index has it (another
    process's renames clear marks without a new MODSEQ, so `refresh` cannot tell), for a
    STORE that builds on pending marks (`writes.store`)."""
    state.moved = {int(uid): where for uid, _, _, mark, _, _ in conn.execute(
        _DIRTY_ROWS, (state.id,)) if (where := names.parse_mark(mark)) is not None}
