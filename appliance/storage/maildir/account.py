"""`MaildirAccount`: one account's mail (Maildir++ plus `mailstead-index.db`) behind the
`AccountMail` contract (`stores.MaildirStores` opens accounts by address).

One RLock serialises an account's calls within the process; across processes the index's
write lock (BEGIN IMMEDIATE) covers every reconciliation and change. Folder operations live
in `folder_ops`, message changes in `writes`, reconciliation in `sync`. A COPY or MOVE takes
two transactions: the first writes down its intent, the second makes the links (and unlinks
the sources) and commits the result with the intent deleted; the intents a crash left are
undone on open and by any write transaction that finds them (`intents`, `_settle`).
A flag STORE commits its rows and leaves the renames to a background job (`dirty`,
`renames`); every other write to a folder, every listing of it and every open completes
the renames still pending first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import cast

from appliance.core import log
from appliance.storage.mailbox_api import (
    INBOX,
    CopyResult,
    FlagOperation,
    FolderSnapshot,
    FolderStatus,
    JunkListener,
    JunkMove,
    NoSuchFolderError,
    OverQuotaError,
    QuotaUsage,
    SpecialUse,
    StoreResult,
)
from appliance.storage.maildir import (
    cache,
    dirty,
    files,
    folder_ops,
    intents,
    locks,
    renames,
    writes,
)
from appliance.storage.maildir import flags as names
from appliance.storage.maildir.folders import folder_path, normalise
from appliance.storage.maildir.index import data_version, open_index, write
from appliance.storage.maildir.sync import (
    FolderState,
    Stamp,
    own_change_stamp,
    reconcile,
    refresh,
    stamp_of,
)

_SEEN, _DELETED = "\\Seen", "\\Deleted"
READ_BATCH = 256        # UIDs whose files `read_many` looks up per hold of the lock


def _read_first(paths: tuple[str, ...]) -> bytes | None:
    """The message at the first of `paths` that exists, CRLF line ends; None: at none."""
    for path in paths:
        try:
            return names.to_crlf(files.read_message(path))
        except FileNotFoundError:
            continue        # renamed meanwhile (flag renames), or by another tool
    return None


class MaildirAccount(folder_ops.FolderOps, renames.RenameSteps):
    """The embedded `AccountMail` (see `storage.mailbox_api`)."""

    def __init__(self, address: str, root: Path, quota_bytes: int = 0,
                 messages_limit: int | None = None) -> None:
        self.address = address
        self.quota_bytes = quota_bytes
        self.messages_limit = messages_limit
        self._lock = threading.RLock()
        self._listeners: list[JunkListener] = []
        self._generation = 0       # bumped by every change made through this object
        # The check `changed` made for a folder during a `try_lock` hold: (thread, folder,
        # stamp, data_version), for that hold's sync to use instead of looking again.
        self._checked: tuple[int, str, Stamp, int] | None = None
        self._try_holder: int | None = None     # the thread holding the lock by try_lock
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn, _fresh = open_index(root)
        super().__init__(root, conn)
        self._guard = locks.IntentGuard(root)
        self._own: set[int] = set()     # ids of this object's intents under way
        self._renames = renames.RenameQueue(self)
        self._closed = False
        self._set_up()
        self._settle_on_open()

    def close(self) -> None:
        self._renames.close()           # the job takes the lock: wait for it outside
        with self._lock:
            self._closed = True
            self._states.clear()
            self._conn.close()
            self._guard.close()

    def _settle_on_open(self) -> None:
        """Undo what crashed COPY/MOVE calls left and do the flag renames a crash left
        pending (`dirty`), before anything reads the folders."""
        with self._lock:
            if self._conn.execute("SELECT 1 FROM intents LIMIT 1").fetchone() is not None:
                with write(self._conn):
                    self._settle()
            self._complete_on_open()

    def _settle(self) -> frozenset[str]:
        """Inside a write transaction: `intents.settle`; base names a reconciliation must
        leave alone."""
        self._checked = None
        in_flight, undone = intents.settle(self._conn, self._root, self._guard, self._own)
        if undone:
            for state in self._states.values():
                state.stamp = None          # the undo changed files behind their stamps
        return in_flight

    def add_junk_listener(self, listener: JunkListener) -> None:
        self._listeners.append(listener)

    def try_lock(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self._try_holder = threading.get_ident()
        return True

    def unlock(self) -> None:
        self._checked = self._try_holder = None  # a check is reused only within one hold
        self._lock.release()

    def exclusive(self, purpose: str) -> AbstractContextManager[None]:
        return locks.exclusive(self._root, purpose)

    def rename_folder(self, old: str, new: str) -> None:
        """RFC 9051 6.3.6: renaming INBOX moves its messages into a new folder `new`."""
        source, target = normalise(old), normalise(new)
        if source != INBOX:
            with self._lock, write(self._conn):
                self._settle()          # an intent names folders: undo it where it was
                self._rename_tree(source, target)
            return
        with self._lock:
            self.create_folder(target)
            self.move(INBOX, list(self._synced(INBOX).metas), target)

    # -- reading -----------------------------------------------------------------------------

    def sync(self, name: str, claim_recent: bool = False) -> FolderSnapshot:
        with self._lock:
            state = self._synced(name)
            recent = self._claim_recent(state) if claim_recent else frozenset()
            return state.snapshot(recent)

    def _synced(self, name: str) -> FolderState:
        """The folder's state, brought up to date with the index and the disk."""
        state = self._state(name)
        checked, self._checked = self._checked, None
        if checked is not None and checked[:2] == (threading.get_ident(), state.name):
            # `changed` looked a moment ago in this hold of the lock (the IMAP direct
            # path: its check, then the command): nothing of ours ran since, and a change
            # from outside landing in between is the next command's, as one landing
            # just after this sync would be (RFC 9051 7: updates come with a response).
            stamp, version = checked[2], checked[3]
        else:
            try:
                stamp = stamp_of(state.path)
            except FileNotFoundError:
                self._states.pop(state.name, None)
                raise NoSuchFolderError(f"no folder {name}") from None
            version = data_version(self._conn)
        if state.stamp == stamp and state.data_version == version:
            return state                                   # the fast path: nothing changed
        if state.stamp == stamp:
            self._conn.execute("BEGIN")
            try:
                fresh = refresh(self._conn, state)
            finally:
                self._conn.execute("COMMIT")
            if fresh is not None:
                fresh.data_version = version
                return fresh
        with write(self._conn):
            in_flight = self._settle()
            state = self._current(state)
            dirty.complete(self._conn, state)       # a listing sees the files in place
            reconcile(self._conn, state, names.read_keywords(state.path), in_flight)
        state.data_version = version
        return state

    def _current(self, state: FolderState) -> FolderState:
        """Inside a write transaction: `state` with every change other connections made."""
        fresh = refresh(self._conn, state)
        return fresh if fresh is not None else self._reload(state.name)

    def _for_write(self, name: str, renames: bool = True) -> FolderState:
        """Inside a write transaction: the folder's state matching the index and the disk,
        its pending flag renames done unless a STORE asks (`renames` False: it builds on
        them); its `stamp` then matches the disk too, or is None when not to be trusted."""
        in_flight = self._settle()
        state = self._current(self._state(name))
        try:
            trusted = stamp_of(state.path) == state.stamp
        except FileNotFoundError:
            raise NoSuchFolderError(f"no folder {name}") from None
        if self._complete(state, trusted, renames):
            reconcile(self._conn, state, names.read_keywords(state.path), in_flight)
        return state

    def _changed_by_us(self, *states: FolderState, files_changed: bool = True) -> None:
        """Inside the write transaction, after our own change to cur/: `state` already holds
        it, so keep a stamp the next sync can trust (`sync.own_change_stamp`; None when the
        one from `_for_write` was not trusted) instead of listing again; and tell IDLE.
        A flag STORE changes no file (`files_changed` False): its renames come later."""
        self._checked = None
        for state in {id(state): state for state in states}.values():   # source may be goal
            if files_changed:
                state.stamp = own_change_stamp(state.path, state.stamp)
        self._generation += 1

    def _claim_recent(self, state: FolderState) -> frozenset[int]:
        if state.recent_uid >= state.uidnext:
            return frozenset()
        with write(self._conn):
            row = self._conn.execute("SELECT recent_uid FROM folders WHERE id = ?",
                                     (state.id,)).fetchone()
            first = int(row[0]) if row is not None else state.uidnext
            self._conn.execute("UPDATE folders SET recent_uid = ? WHERE id = ?",
                               (state.uidnext, state.id))
        state.recent_uid = state.uidnext
        return frozenset(uid for uid in state.metas if uid >= first)

    def changed(self, name: str, since: object) -> tuple[bool, object]:
        with self._lock:
            normal = normalise(name)
            try:
                token = (stamp_of(folder_path(self._root, normal)), data_version(self._conn),
                         self._generation)
            except FileNotFoundError:
                raise NoSuchFolderError(f"no folder {name}") from None
            # Kept for a sync in the same `try_lock` hold (cleared by `unlock`, by our own
            # changes and by the sync that takes it); a plain call keeps nothing.
            me = threading.get_ident()
            self._checked = ((me, normal, token[0], token[1])
                             if self._try_holder == me else None)
        return token != since, token

    def status(self, name: str) -> FolderStatus:
        with self._lock:
            state = self._synced(name)
            metas = state.metas.values()
            return FolderStatus(
                messages=len(state.metas), uidnext=state.uidnext,
                uidvalidity=state.uidvalidity,
                unseen=sum(1 for m in metas if _SEEN not in m.flags),
                deleted=sum(1 for m in metas if _DELETED in m.flags),
                size=sum(m.size for m in metas), highest_modseq=state.highest_modseq,
                recent=sum(1 for uid in state.metas if uid >= state.recent_uid))

    def read(self, name: str, uid: int) -> bytes:
        for attempt in range(3):
            with self._lock:
                state = self._synced(name) if attempt == 2 else self._state(name)
                if uid not in state.files:
                    state = self._synced(name)
                paths = state.file_strs(uid)        # KeyError: expunged
            content = _read_first(paths)            # the row's name, then the one before
            if content is not None:
                return content
        raise KeyError(uid)

    def read_many(self, name: str, uids: Sequence[int]) -> Iterator[tuple[int, bytes | None]]:
        """See `AccountMail.read_many`: the files of each `READ_BATCH` UIDs looked up under
        one hold of the lock (a sync only when one of them is not in the folder's state),
        then read outside it, each at the row's name and then the name a pending flag
        rename leaves (`cache.paths_of`); one that is at neither any more goes through
        `read`, which syncs and looks again."""
        for start in range(0, len(uids), READ_BATCH):
            batch = uids[start:start + READ_BATCH]
            with self._lock:
                state = self._state(name)
                files = state.files
                if any(uid not in files for uid in batch):
                    state = self._synced(name)
                paths = cache.paths_of(state, batch)
            for uid in batch:
                where = paths.get(uid)
                content = None if where is None else _read_first(where)
                yield uid, content if content is not None else self._read_or_none(name, uid)

    def _read_or_none(self, name: str, uid: int) -> bytes | None:
        try:
            return self.read(name, uid)
        except KeyError:
            return None

    def expunged_since(self, name: str, modseq: int) -> list[int]:
        with self._lock:
            state = self._state(name)
            rows = self._conn.execute("SELECT uid FROM expunged WHERE folder_id = ? AND "
                                      "modseq > ? ORDER BY uid", (state.id, modseq))
            return [int(row[0]) for row in rows]

    def get_cached(self, name: str, uid: int, key: str) -> str | None:
        return self.get_cached_many(name, (uid,), key).get(uid)

    def get_cached_many(self, name: str, uids: Iterable[int], key: str) -> dict[int, str]:
        with self._lock:
            state = self._state(name)
            found = cache.get_many(self._conn, state.id, uids, key)
        return {uid: cache.from_stored(value) for uid, value in found.items()}

    def put_cached(self, name: str, uid: int, key: str, value: str) -> None:
        with self._lock:
            state = self._state(name)
            cache.put_many(self._conn, state.id, key, {uid: cache.to_text(value)})

    def headers_many(self, name: str, uids: Iterable[int]) -> dict[int, bytes]:
        """See `AccountMail.headers_many`: cached blocks in one query; the others read from
        their files (outside the lock) and cached in one transaction."""
        wanted = list(uids)
        with self._lock:
            state = self._state(name)
            found = cache.get_many(self._conn, state.id, wanted, cache.HEADERS_KEY)
            paths = cache.paths_of(state, (u for u in wanted if u not in found))
        headers = cast(dict[int, bytes], found)      # only bytes are stored under this key
        fresh = self._read_headers(name, paths)
        if fresh:
            with self._lock:
                cache.put_many(self._conn, state.id, cache.HEADERS_KEY, fresh)
        return headers | fresh

    def _read_headers(self, name: str, paths: dict[int, tuple[str, ...]]) -> dict[int, bytes]:
        """Each message's header block; a file renamed meanwhile is found again after one
        sync, an expunged message is left out."""
        read: dict[int, bytes] = {}
        for attempt in range(2):
            lost: list[int] = []
            for uid, path in paths.items():
                try:
                    read[uid] = cache.read_header_of(path)
                except FileNotFoundError:
                    lost.append(uid)
            if not lost or attempt:
                break
            with self._lock:
                paths = cache.paths_of(self._synced(name), lost)
        return read

    # -- writing -----------------------------------------------------------------------------

    def append(self, name: str, content: bytes, flags: frozenset[str] = frozenset(),
               internal_date: float | None = None) -> CopyResult:
        flags = writes.clean_flags(flags)
        with self._lock:
            path = self._state(name).path
        temp, base = files.stage(path, content, internal_date)
        try:
            with self._lock, write(self._conn):
                state = self._for_write(name)
                self._check_quota(names.sizes_in_name(base)[1] or 0, 1)
                date = internal_date if internal_date is not None else temp.stat().st_mtime
                uid = writes.append_message(self._conn, state, temp, base, flags, date)
                self._changed_by_us(state)
        finally:
            files.discard(temp)          # gone already unless something failed
        return CopyResult(state.uidvalidity, (), (uid,))

    def store_flags(self, name: str, uids: Sequence[int], operation: FlagOperation,
                    flags: frozenset[str], unchanged_since: int | None = None) -> StoreResult:
        flags = writes.clean_flags(flags)
        with self._lock:
            with write(self._conn):         # committed (fsync'ed WAL): the OK is durable
                state = self._for_write(name, renames=False)
                result, marked = writes.store(self._conn, state, uids, operation, flags,
                                              unchanged_since)
                self._changed_by_us(state, files_changed=False)
            if marked:
                self._renames.schedule(state.id)
        return result

    def copy(self, name: str, uids: Sequence[int], target: str) -> CopyResult:
        return self._copy(name, uids, target, move=False)

    def move(self, name: str, uids: Sequence[int], target: str) -> CopyResult:
        return self._copy(name, uids, target, move=True)

    def _copy(self, name: str, uids: Sequence[int], target: str, move: bool) -> CopyResult:
        """COPY/MOVE as one step across crashes: the intent first (`_begin_copy`, which
        holds the intent lock when it returns one), then the links, the unlinks and one
        commit of the result with the intent deleted (RFC 9051 6.4.7, RFC 6851 3.3)."""
        with self._lock:
            intent, links, uidvalidity = self._begin_copy(name, uids, target, move)
            if intent is None:
                return CopyResult(uidvalidity, (), ())
            try:
                with write(self._conn):
                    source, goal = self._for_write(name), self._for_write(target)
                    old, new = writes.copy_messages(self._conn, source, goal, links)
                    if move:
                        writes.remove_messages(self._conn, source, old)
                    intents.forget(self._conn, intent.id)
                    self._changed_by_us(source, goal)
            except BaseException:
                self._abandon(intent)
                raise
            finally:
                self._own.discard(intent.id)
                self._guard.release()
            self._junk_event(source, goal, old, new)
        return CopyResult(goal.uidvalidity, tuple(old), tuple(new))

    def _begin_copy(self, name: str, uids: Sequence[int], target: str,
                    move: bool) -> tuple[intents.Intent | None, list[writes.Link], int]:
        """Plan the links and commit the intent; (intent or None when there is nothing to
        copy, the planned links, the target's UIDVALIDITY)."""
        held = False
        try:
            with write(self._conn):
                source, goal = self._for_write(name), self._for_write(target)
                present = [uid for uid in set(uids) if uid in source.metas]
                if not move:     # a MOVE within the account does not grow its usage
                    self._check_quota(sum(source.metas[u].size for u in present), len(present))
                links = writes.plan_copy(source, goal, present)
                if not links:
                    return None, [], goal.uidvalidity
                self._guard.hold()      # never waits: only a write transaction takes it EX
                held = True
                named = tuple((*link.source, link.filename) for link in links)
                kind = intents.MOVE if move else intents.COPY
                intent = intents.Intent(
                    intents.record(self._conn, kind, source.name, goal.name, named),
                    kind, source.name, goal.name, named)
        except BaseException:
            if held:
                self._guard.release()
            raise
        self._own.add(intent.id)
        return intent, links, goal.uidvalidity

    def _abandon(self, intent: intents.Intent) -> None:
        """After a failed COPY/MOVE (its transaction rolled back): undo it now."""
        for folder in (intent.source, intent.target):
            self._states.pop(folder, None)       # holds rows the rollback took back
        intents.abandon(self._conn, self._root, intent)

    def expunge(self, name: str, uids: Sequence[int] | None = None) -> list[int]:
        with self._lock, write(self._conn):
            state = self._for_write(name)
            among = state.metas.keys() if uids is None else set(uids)
            doomed = [u for u in among if u in state.metas and _DELETED in state.metas[u].flags]
            removed = writes.remove_messages(self._conn, state, doomed)
            self._changed_by_us(state)
        return removed

    def remove(self, name: str, uids: Sequence[int]) -> list[int]:
        with self._lock, write(self._conn):
            state = self._for_write(name)
            removed = writes.remove_messages(self._conn, state, uids)
            self._changed_by_us(state)
        return removed

    # -- account-wide ------------------------------------------------------------------------

    def quota(self) -> QuotaUsage:
        with self._lock:
            used, count = self.usage_for_delivery()
            return QuotaUsage(used, self.quota_bytes or None, count, self.messages_limit)

    def usage_for_delivery(self) -> tuple[int, int]:
        """(octets, messages) the index holds in all folders: one indexed aggregate query,
        cheap enough to ask before every delivery (mail in new/ not yet synced is not in it)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM messages").fetchone()
            return int(row[0]), int(row[1])

    def _check_quota(self, octets: int, messages: int) -> None:
        used, count = self.usage_for_delivery()
        if self.quota_bytes and used + octets > self.quota_bytes:
            raise OverQuotaError(f"storage quota exceeded ({used + octets} > {self.quota_bytes})")
        if self.messages_limit is not None and count + messages > self.messages_limit:
            raise OverQuotaError(f"message quota exceeded ({count + messages} > "
                                 f"{self.messages_limit})")

    def _junk_event(self, source: FolderState, goal: FolderState, old: list[int],
                    new: list[int]) -> None:
        """RFC 6154 \\Junk: into it = spam, out of it (but not to \\Trash) = not spam."""
        junk, trash = SpecialUse.JUNK.value, SpecialUse.TRASH.value
        if not old or source is goal:
            return
        if goal.special_use == junk and source.special_use != junk:
            event = JunkMove(self.address, True, goal.name, tuple(new))
        elif source.special_use == junk and goal.special_use not in (junk, trash):
            event = JunkMove(self.address, False, goal.name, tuple(new))
        else:
            return
        log.event("mailbox.junk_move", account=self.address, to_junk=event.to_junk,
                  folder=event.folder, count=len(event.uids))
        for listener in list(self._listeners):
            listener(event)
