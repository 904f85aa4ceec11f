"""Message changes inside one index write transaction: append, flag STORE, copy, remove.

Each function runs with the folder state fresh (see `MaildirAccount._for_write`: no flag
rename of the folder is pending then), changes the files first (durably), then the rows,
with one new MODSEQ per call (RFC 7162 3.1.1). A crash between the file change and the
commit is repaired by the next sync, which trusts the files; a COPY or MOVE is first planned
(`plan_copy`) and written down as an intent, which the next open undoes instead (`intents`).
A flag STORE is the exception: its committed rows are the record, and the renames follow
(`dirty`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from appliance.storage.mailbox_api import (
    SYSTEM_FLAGS,
    FlagOperation,
    MailboxError,
    MessageMeta,
    StoreResult,
)
from appliance.storage.maildir import files
from appliance.storage.maildir import flags as names
from appliance.storage.maildir.sync import (
    FolderState,
    format_flags,
    insert_message,
    insert_messages,
    record_expunged,
    set_counters,
)

RECENT = "\\Recent"


def clean_flags(flags: frozenset[str]) -> frozenset[str]:
    """Flags a message may store: no \\Recent (RFC 9051 2.3.2), no unknown system flags.

    Raises:
        MailboxError: a flag that is not an atom (spaces, controls) or an unknown `\\` flag.
    """
    kept = set()
    for flag in flags:
        if flag == RECENT:
            continue
        bad = not flag or any(c.isspace() or ord(c) < 0x20 or c in '(){%*"]' for c in flag)
        if bad or (flag.startswith("\\") and flag not in SYSTEM_FLAGS):
            raise MailboxError(f"invalid flag {flag!r}")
        kept.add(flag)
    return frozenset(kept)


def append_message(conn: sqlite3.Connection, state: FolderState, temp: Path, base: str,
                   flags: frozenset[str], internal_date: float) -> int:
    """Publish a staged file into cur/ with its flags and give it the next UID."""
    keywords = names.add_keywords(state.path, names.read_keywords(state.path), flags)
    filename = names.file_name(base, names.flags_to_letters(flags, keywords))
    files.publish(temp, state.path, filename)
    modseq = state.highest_modseq + 1
    size = names.sizes_in_name(base)[1] or 0
    uid = state.uidnext
    insert_message(conn, state, base, "cur", filename,
                   MessageMeta(uid, flags, modseq, internal_date, size))
    set_counters(conn, state, modseq)
    return uid


def new_flags(old: frozenset[str], operation: FlagOperation,
              flags: frozenset[str]) -> frozenset[str]:
    if operation is FlagOperation.ADD:
        return old | flags
    if operation is FlagOperation.REMOVE:
        return old - flags
    return flags


def store(conn: sqlite3.Connection, state: FolderState, uids: Sequence[int],
          operation: FlagOperation, flags: frozenset[str],
          unchanged_since: int | None) -> tuple[StoreResult, bool]:
    """STORE (RFC 7162 3.1.3 for UNCHANGEDSINCE): the rows only, each carrying the name its
    file must get and, as its dirty mark, the name it has now (`dirty`; a row still marked
    keeps its mark, read afresh by the caller); the renames follow after the commit. (The
    result, whether any row is marked.)

    Built for 1:* on large folders: per message a dict look-up or two and one new
    MessageMeta (`_FlagBatch`), one executemany for the rows."""
    keywords = names.add_keywords(state.path, names.read_keywords(state.path), flags)
    modseq = state.highest_modseq + 1
    refused: list[int] = []
    metas, where, moved = state.metas, state.files, state.moved
    batch = _FlagBatch(files.FlagNamer(keywords), operation, flags, modseq, state.id)
    for uid in sorted(set(uids)):
        meta = metas.get(uid)
        if meta is None:
            continue                      # expunged meanwhile: nothing to change
        if unchanged_since is not None and meta.modseq > unchanged_since:
            refused.append(uid)
            continue
        batch.add(meta, where[uid], moved.get(uid))
    if batch.changed:
        conn.executemany("UPDATE messages SET subdir = 'cur', filename = ?, dirty = ?, "
                         "flags = ?, modseq = ? WHERE folder_id = ? AND uid = ?", batch.rows)
        state.replace_many(batch.changed, batch.placed)
        set_counters(conn, state, modseq)
    return StoreResult(tuple(batch.changed), tuple(refused)), batch.marked


class _FlagBatch:
    """The messages one STORE changes. A batch has few distinct flag sets, so each old set
    maps to its new set and index text once (`_outcome`)."""

    def __init__(self, namer: files.FlagNamer, operation: FlagOperation,
                 flags: frozenset[str], modseq: int, folder_id: int) -> None:
        self.namer, self.operation, self.flags, self.modseq = namer, operation, flags, modseq
        self.folder_id = folder_id
        self.changed: list[MessageMeta] = []
        # (new name in cur/, the file's name now when it differs)
        self.placed: list[tuple[str, tuple[str, str] | None]] = []
        # The UPDATE parameters: (file name, dirty mark, flags text, modseq, folder, uid).
        self.rows: list[tuple[str, str | None, str, int, int, int]] = []
        self.marked = False
        self._outcomes: dict[frozenset[str], tuple[frozenset[str], str] | None] = {}

    def _outcome(self, old: frozenset[str]) -> tuple[frozenset[str], str] | None:
        """(new flags, their index text) for a message with `old`; None: no change."""
        try:
            return self._outcomes[old]
        except KeyError:
            wanted = new_flags(old, self.operation, self.flags)
            found = self._outcomes[old] = None if wanted == old else (wanted,
                                                                      format_flags(wanted))
            return found

    def add(self, meta: MessageMeta, where: tuple[str, str],
            marked: tuple[str, str] | None) -> None:
        """`where`: the row's name; `marked`: where the file still is (a pending rename)."""
        outcome = self._outcome(meta.flags)
        if outcome is None:
            return
        filename = self.namer.name(where[1], outcome[0])
        at = where if marked is None else marked
        if at[0] == "cur" and at[1] == filename:
            moved, mark = None, None            # a keyword with no letter: nothing to rename
        else:
            moved, mark, self.marked = at, names.mark_of(*at), True
        uid, modseq = meta.uid, self.modseq
        self.changed.append(MessageMeta(uid, outcome[0], modseq, meta.internal_date, meta.size))
        self.placed.append((filename, moved))
        self.rows.append((filename, mark, outcome[1], modseq, self.folder_id, uid))


class Link(NamedTuple):
    """One message of a COPY or MOVE: where it is, and the base its link in the target gets."""

    uid: int
    source: tuple[str, str]          # (subdir, name) when planned
    base: str
    filename: str                    # the link's name when planned (flags may change it)


def plan_copy(source: FolderState, target: FolderState, uids: Sequence[int]) -> list[Link]:
    """Name the target link of each message still there (in UID order), for the intent
    written before the first link (`intents`)."""
    wanted = [uid for uid in sorted(set(uids)) if uid in source.metas]
    letters = _Letters(target, source, wanted)
    planned: list[Link] = []
    for uid in wanted:
        meta = source.metas[uid]
        try:
            size = os.stat(source.file_str(uid)).st_size
        except FileNotFoundError:
            continue            # removed by another tool since the sync: nothing to copy
        base = files.new_base(size, meta.size)
        planned.append(Link(uid, source.files[uid], base,
                            names.file_name(base, letters.of(meta.flags))))
    return planned


class _Letters:
    """The target's info letters for flag sets (few distinct ones in a batch)."""

    def __init__(self, target: FolderState, source: FolderState, uids: list[int]) -> None:
        all_flags = frozenset().union(*(source.metas[uid].flags for uid in uids))
        self.keywords = names.add_keywords(target.path, names.read_keywords(target.path),
                                           all_flags)
        self._known: dict[frozenset[str], str] = {}

    def of(self, flags: frozenset[str]) -> str:
        letters = self._known.get(flags)
        if letters is None:
            letters = self._known[flags] = names.flags_to_letters(flags, self.keywords)
        return letters


def copy_messages(conn: sqlite3.Connection, source: FolderState, target: FolderState,
                  planned: Sequence[Link]) -> tuple[list[int], list[int]]:
    """Link each planned message into the target's cur/ with its flags (the planned base;
    the letters of its flags now); (source UIDs, target UIDs)."""
    wanted = [link.uid for link in planned if link.uid in source.metas]
    letters = _Letters(target, source, wanted)
    modseq = target.highest_modseq + 1
    added: list[tuple[str, str, str, MessageMeta]] = []
    old: list[int] = []
    for link in planned:
        meta = source.metas.get(link.uid)
        if meta is None:
            continue            # expunged since the plan: nothing to copy
        filename = names.file_name(link.base, letters.of(meta.flags))
        try:
            files.link_copy(source.file_str(link.uid), target.path, filename)
        except FileNotFoundError:
            continue            # removed by another tool since the sync: nothing to copy
        new_uid = target.uidnext + len(added)
        added.append((link.base, "cur", filename,
                      MessageMeta(new_uid, meta.flags, modseq, meta.internal_date, meta.size)))
        old.append(link.uid)
    if added:
        files.sync_dirs(target.path / "cur")
        insert_messages(conn, target, added)
        set_counters(conn, target, modseq)
    return old, [meta.uid for _, _, _, meta in added]


def remove_messages(conn: sqlite3.Connection, state: FolderState,
                    uids: Sequence[int]) -> list[int]:
    """Unlink the files, fsync, and record the UIDs as expunged (for QRESYNC)."""
    gone = [uid for uid in sorted(set(uids)) if uid in state.metas]
    if not gone:
        return []
    for uid in gone:
        files.unlink(state.file_str(uid))
    files.sync_dirs(*(state.path / subdir for subdir in {state.files[uid][0] for uid in gone}))
    modseq = state.highest_modseq + 1
    record_expunged(conn, state, gone, modseq)
    set_counters(conn, state, modseq)
    return gone
