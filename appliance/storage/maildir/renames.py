"""The background job of deferred flag renames (`dirty`): `RenameQueue` runs an account's
pending folders in a shared worker thread, and `RenameSteps` (a part of `MaildirAccount`) does
each batch under the account's lock and the index write lock.

Why a background thread and not "lazily, at the next command": a client that changes flags
of 1,000 messages at a time (the benchmark alternates +FLAGS and -FLAGS) would pay for the
renames of one STORE in the next, so nothing would leave the reply path. The job starts
right after the commit (`START_DELAY` later, so the STORE's own reply is out first); its
batches are short (`dirty.BATCH` renames and an fsync: about 10 ms) so a command of the same
account that needs the lock waits at most one batch; a STORE builds on pending marks, and
a write to the folder or a listing of it that comes first does the rest itself
(`dirty.complete`), and the job then finds nothing left. (An earlier try renamed in a
helper thread *before* the commit, overlapped with the index update: the GIL hand-offs cost
more than the overlap saved. Here nothing waits for the renames.)

Each batch is an own change to cur/ made under both locks, exactly as a STORE used to make
its renames, so `sync`'s stamp rules hold unchanged: the batch checks that cur/ still has
the stamp this process trusts, renames, and marks cur/ again (`own_change_stamp`); if cur/
had changed (another tool, another process), the stamp is dropped and the next sync lists.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from appliance.core import log
from appliance.storage.mailbox_api import NoSuchFolderError
from appliance.storage.maildir import cache, dirty
from appliance.storage.maildir.index import write
from appliance.storage.maildir.sync import FolderState, own_change_stamp, stamp_of


class RenameHost(Protocol):
    """What `RenameQueue` needs from the account (`MaildirAccount`)."""

    def rename_step(self, folder_id: int, after: int) -> dirty.Batch | None:
        """One batch under the account's locks; None: nothing to do (closed, folder gone)."""
        ...


# The job starts this long after the STORE's commit: its first batch takes the account lock,
# which the STORE's own reply needs once more (the session's refresh after the command).
START_DELAY = 0.01


@functools.cache
def _workers() -> ThreadPoolExecutor:
    """Threads that run the accounts' jobs (made on first use, never at import). Their
    queued work still runs at interpreter exit (concurrent.futures joins them)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="maildir-rename")


class RenameQueue:
    """One account's background job: the folders with renames to do, worked through one
    folder at a time in a shared worker thread."""

    def __init__(self, host: RenameHost) -> None:
        self._host = host
        self._cond = threading.Condition()
        self._pending: set[int] = set()
        self._running = False
        self._closed = False

    def schedule(self, folder_id: int) -> None:
        """After a commit that marked rows of the folder."""
        with self._cond:
            if self._closed:
                return                  # the rows stay dirty: the next open completes them
            self._pending.add(folder_id)
            if self._running:
                return
            try:
                _workers().submit(self._run)
            except RuntimeError:        # the interpreter is exiting: the next open does them
                return
            self._running = True

    def wait(self, timeout: float | None = None) -> bool:
        """Until no job is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def close(self, timeout: float | None = None) -> None:
        with self._cond:
            self._closed = True
        self.wait(timeout)

    def _run(self) -> None:
        time.sleep(START_DELAY)
        while True:
            with self._cond:
                if not self._pending:
                    self._running = False
                    self._cond.notify_all()
                    return
                folder_id = self._pending.pop()
            try:
                self._folder(folder_id)
            except Exception as exc:    # the rows stay dirty: the next write completes them
                log.error("mailbox.flag_renames_failed", exc, folder_id=folder_id)

    def _folder(self, folder_id: int) -> None:
        after = 0
        while (batch := self._host.rename_step(folder_id, after)) is not None and batch.more:
            after = batch.last
            time.sleep(0)           # let a command waiting for the account lock have it


class RenameSteps:
    """The account's side of the job (`RenameHost`) and of completing renames inline."""

    _lock: threading.RLock
    _conn: sqlite3.Connection
    _states: dict[str, FolderState]
    _closed: bool
    _renames: RenameQueue

    def _state(self, name: str) -> FolderState:
        raise NotImplementedError

    def _current(self, state: FolderState) -> FolderState:
        raise NotImplementedError

    def wait_renames(self, timeout: float | None = None) -> bool:
        """Wait until the background flag renames are done (False on timeout)."""
        return self._renames.wait(timeout)

    def _complete_on_open(self) -> None:
        """Do the renames a crash left pending (rows still marked), folder by folder."""
        rows = self._conn.execute("SELECT DISTINCT f.name FROM messages m JOIN folders f "
                                  "ON f.id = m.folder_id WHERE m.dirty IS NOT NULL")
        for name in [str(row[0]) for row in rows]:
            try:
                with write(self._conn):
                    dirty.complete(self._conn, self._current(self._state(name)))
            except NoSuchFolderError:
                continue                # its directory is gone: the rows go with it

    def _complete(self, state: FolderState, trusted: bool, renames: bool = True) -> bool:
        """Inside a write transaction: the folder's pending renames done now, as an own
        change (a `trusted` stamp stays trusted); True when the folder must be listed.
        Without `renames` (a STORE, which builds on the marks) and with a trusted stamp,
        the marks are only read afresh (`dirty.marks`): only a listing needs them done."""
        if not renames and trusted:
            dirty.marks(self._conn, state)
            return False
        done = dirty.complete(self._conn, state)
        if done.renamed:
            state.stamp = own_change_stamp(state.path, state.stamp if trusted else None)
        return done.relist or not trusted or state.stamp is None

    def rename_step(self, folder_id: int, after: int) -> dirty.Batch | None:
        with self._lock:
            state = self._loaded(folder_id)
            if state is None:
                return None             # a write or a listing completes them instead
            try:
                # Unsynced commit: the renames are fsync'ed; a clear a power cut loses
                # leaves a mark naming a file already renamed, which `complete` just clears.
                with cache.unsynced(self._conn), write(self._conn):
                    trusted = stamp_of(state.path) == state.stamp
                    batch = dirty.rename_batch(self._conn, state, after, dirty.BATCH)
                    if batch.renamed:
                        state.stamp = own_change_stamp(state.path,
                                                       state.stamp if trusted else None)
            except FileNotFoundError:
                return None             # the folder went away
            if batch.lost:
                state.stamp = None      # renamed or removed by a tool: list next time
            return batch

    def _loaded(self, folder_id: int) -> FolderState | None:
        if self._closed:
            return None
        return next((s for s in self._states.values() if s.id == folder_id), None)
