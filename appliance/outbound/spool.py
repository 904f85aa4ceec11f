"""The embedded `Queue`: message files in `queue/messages/` plus `queue/queue.db` (SQLite, WAL).

Durability (DESIGN.md): `enqueue` writes and fsyncs the message file, then hands its rows to
a group commit, where one leader fsyncs the messages directory once and inserts the rows of
every waiting message in one SQLite transaction. The row commit is the commit point: only
after it does the caller answer `250`.

Recovery rule (run at start): a file without a row was never acknowledged, so it is removed;
a row without a file cannot come from a crash (the file is durable before the row), so it
means damage: it is logged as `queue.message_lost` and made due now, and the runner bounces
its recipients with a report that has no copy of the message. A message whose recipients are
all finished (a crash between the last update and the removal) is removed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from appliance.core import log
from appliance.core.addresses import domain_of
from appliance.core.errors import DeliveryError
from appliance.core.fsio import GroupCommit, fsync_dir, write_new_file
from appliance.storage.db import immediate_transaction
from appliance.storage.interfaces import (
    NewMessage,
    QueuedMessage,
    QueuedRecipient,
    RecipientState,
    RecipientUpdate,
    Settled,
)

QUEUE_DIR = "queue"          # the spool's directory in the data directory
DB_NAME = "queue.db"
MESSAGES_DIR = "messages"
SCHEMA_VERSION = 1
TEMP_FAILURE = "451 4.3.0 Temporary failure queueing the message, please retry"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        queue_id TEXT PRIMARY KEY, sender TEXT NOT NULL, envid TEXT, ret TEXT,
        smtputf8 INTEGER NOT NULL, body_8bit INTEGER NOT NULL, size INTEGER NOT NULL,
        queued_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS recipients (
        queue_id TEXT NOT NULL REFERENCES messages (queue_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL,
        notify TEXT NOT NULL, orcpt TEXT,
        state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL,
        last_reply TEXT NOT NULL DEFAULT '', remote_host TEXT,
        delay_warned INTEGER NOT NULL DEFAULT 0, updated_at REAL,
        PRIMARY KEY (queue_id, idx))""",
    "CREATE INDEX IF NOT EXISTS recipients_due ON recipients (state, next_try)",
)

_Row = tuple[NewMessage, int, float]    # envelope, size, queued_at
# Rows of the (state, next_try) index `due` walks at most: a bound on its cost with any
# backlog. Due mail of other domains behind this many rows of busy domains waits its turn.
DUE_SCAN_ROWS = 2000


class Spool:
    """Queue files and rows under one directory (normally `data_dir/queue`)."""

    def __init__(self, root: Path, group_window: float = 0.0) -> None:
        self.root = root
        self.messages_dir = root / MESSAGES_DIR
        self.messages_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._conn = _connect(root / DB_NAME)
        self._lock = threading.Lock()
        self._group: GroupCommit[_Row] = GroupCommit(self._commit_rows, group_window)
        self._settles: GroupCommit[_Settle] = GroupCommit(self._commit_settles)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing -----------------------------------------------------------------------------

    def enqueue(self, message: NewMessage, content: bytes) -> None:
        path = self.path(message.queue_id)
        try:
            write_new_file(path, content)
        except OSError as exc:
            raise DeliveryError(TEMP_FAILURE, f"queue file write failed: {exc}") from exc
        try:
            self._group.submit((message, len(content), time.time()))
        except Exception as exc:
            _unlink(path)
            raise DeliveryError(TEMP_FAILURE, f"queue commit failed: {exc}") from exc

    def _commit_rows(self, rows: list[_Row]) -> None:
        """One directory fsync and one transaction for a whole batch of new messages."""
        fsync_dir(self.messages_dir)
        with self._transaction() as conn:
            for message, size, queued_at in rows:
                _insert(conn, message, size, queued_at)

    def update(self, queue_id: str, updates: Sequence[RecipientUpdate]) -> bool:
        with self._transaction() as conn:
            return _update(conn, queue_id, updates, time.time())

    def settle(self, queue_id: str, updates: Sequence[RecipientUpdate]) -> Settled:
        """See `Queue.settle`. Concurrent callers share one commit (group commit)."""
        item = _Settle(queue_id, updates)
        self._settles.submit(item)
        if item.settled is Settled.REMOVED:
            _unlink(self.path(queue_id))   # a file left by a crash here is an orphan
        return item.settled

    def _commit_settles(self, items: list[_Settle]) -> None:
        now = time.time()
        with self._transaction() as conn:
            for item in items:
                if not _update(conn, item.queue_id, item.updates, now):
                    item.settled = Settled.GONE
                elif conn.execute("SELECT 1 FROM recipients WHERE queue_id = ? AND state = ?",
                                  (item.queue_id, RecipientState.QUEUED.value)).fetchone():
                    item.settled = Settled.KEPT
                else:
                    conn.execute("DELETE FROM messages WHERE queue_id = ?", (item.queue_id,))
                    item.settled = Settled.REMOVED

    def remove(self, queue_id: str) -> bool:
        with self._transaction() as conn:
            removed = conn.execute("DELETE FROM messages WHERE queue_id = ?",
                                   (queue_id,)).rowcount
        _unlink(self.path(queue_id))     # a file left by a crash here is an orphan: recovered
        return bool(removed)

    def retry(self, queue_id: str | None, now: float) -> int:
        sql = "UPDATE recipients SET next_try = ? WHERE state = ?"
        params: tuple[object, ...] = (now, RecipientState.QUEUED.value)
        if queue_id is not None:
            sql += " AND queue_id = ?"
            params += (queue_id,)
        with self._transaction() as conn:
            return int(conn.execute(sql, params).rowcount)

    # -- reading -----------------------------------------------------------------------------

    def path(self, queue_id: str) -> Path:
        """The message file of `queue_id` (which must look like a queue id)."""
        if not queue_id.isascii() or not queue_id.isalnum():
            raise ValueError(f"not a queue id: {queue_id!r}")
        return self.messages_dir / queue_id

    def read(self, queue_id: str) -> bytes:
        return self.path(queue_id).read_bytes()

    def get(self, queue_id: str) -> QueuedMessage | None:
        found = self._load([queue_id])
        return found[0] if found else None

    def messages(self) -> list[QueuedMessage]:
        with self._lock:
            ids = [r[0] for r in self._conn.execute(
                "SELECT queue_id FROM messages ORDER BY queued_at, queue_id")]
        return self._load(ids)

    def due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
            busy_domains: frozenset[str] = frozenset()) -> list[QueuedMessage]:
        """See `Queue.due`: walks the (state, next_try) index, at most `DUE_SCAN_ROWS`
        rows, so its cost does not grow with the backlog."""
        busy = sorted(busy_domains)
        ids: dict[str, None] = {}
        with self._lock:
            cursor = self._conn.execute(
                "SELECT queue_id FROM (SELECT queue_id, domain FROM recipients "  # noqa: S608
                "WHERE state = ? AND next_try <= ? ORDER BY next_try LIMIT ?) "
                f"WHERE domain NOT IN ({','.join('?' * len(busy))})",
                (RecipientState.QUEUED.value, now, max(DUE_SCAN_ROWS, 4 * limit), *busy))
            for (queue_id,) in cursor:
                if queue_id not in exclude:
                    ids[queue_id] = None
                    if len(ids) >= limit:
                        break
            cursor.close()
        return self._load(list(ids))

    def next_due(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT MIN(next_try) FROM recipients WHERE state = ?",
                                     (RecipientState.QUEUED.value,)).fetchone()
        return None if row[0] is None else float(row[0])

    def _load(self, queue_ids: Sequence[str]) -> list[QueuedMessage]:
        if not queue_ids:
            return []
        marks = ",".join("?" * len(queue_ids))
        with self._lock:
            messages = self._conn.execute(
                f"SELECT * FROM messages WHERE queue_id IN ({marks})", queue_ids).fetchall()  # noqa: S608
            recipients = self._conn.execute(
                f"SELECT * FROM recipients WHERE queue_id IN ({marks}) "  # noqa: S608
                "ORDER BY queue_id, idx", queue_ids).fetchall()
        by_id: dict[str, list[QueuedRecipient]] = {}
        for row in recipients:
            by_id.setdefault(row["queue_id"], []).append(_recipient(row))
        order = {queue_id: index for index, queue_id in enumerate(queue_ids)}
        found = [_message(row, by_id.get(row["queue_id"], [])) for row in messages]
        return sorted(found, key=lambda m: order[m.queue_id])

    # -- recovery ----------------------------------------------------------------------------

    def recover(self, orphan_grace: float = 0.0) -> dict[str, int]:
        """Apply the recovery rule (module docstring); return counts for the log.

        Args:
            orphan_grace: only files older than this many seconds count as orphans, so a
                recovery that runs while other processes enqueue cannot take their files.
        """
        with self._lock:
            ids = {r[0] for r in self._conn.execute("SELECT queue_id FROM messages")}
            finished = [r[0] for r in self._conn.execute(
                "SELECT queue_id FROM messages m WHERE NOT EXISTS (SELECT 1 FROM recipients "
                "r WHERE r.queue_id = m.queue_id AND r.state = ?)",
                (RecipientState.QUEUED.value,))]
        files = set(self._file_names(time.time() - orphan_grace))
        orphans = sorted(files - ids)
        for name in orphans:
            _unlink(self.messages_dir / name)
        for queue_id in finished:
            self.remove(queue_id)
        lost = sorted(q for q in ids - set(finished)
                      if not (self.messages_dir / q).exists())
        for queue_id in lost:
            log.error("queue.message_lost", queue_id=queue_id)
            self.retry(queue_id, time.time())
        return {"orphan_files": len(orphans), "finished": len(finished), "lost": len(lost),
                "queued": len(ids) - len(finished)}

    def _file_names(self, older_than: float) -> Iterator[str]:
        for entry in os.scandir(self.messages_dir):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime <= older_than:
                yield entry.name

    # -- SQLite ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._conn) as conn:
            yield conn


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")    # COMMIT fsyncs the WAL: the 250 is durable
    conn.execute("PRAGMA foreign_keys=ON")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has schema version {version}, newer than this "
                           f"software's {SCHEMA_VERSION}: refusing to run on it")
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    return conn


class _Settle:
    """One `settle` call riding a group commit, with its outcome."""

    def __init__(self, queue_id: str, updates: Sequence[RecipientUpdate]) -> None:
        self.queue_id = queue_id
        self.updates = updates
        self.settled = Settled.GONE


def _update(conn: sqlite3.Connection, queue_id: str, updates: Sequence[RecipientUpdate],
            now: float) -> bool:
    if conn.execute("SELECT 1 FROM messages WHERE queue_id = ?",
                    (queue_id,)).fetchone() is None:
        return False
    conn.executemany(
        "UPDATE recipients SET state = ?, attempts = attempts + ?, next_try = ?, "
        "last_reply = ?, remote_host = ?, delay_warned = ?, updated_at = ? "
        "WHERE queue_id = ? AND address = ?",
        [(u.state.value, int(u.attempted), u.next_try, u.last_reply, u.remote_host,
          int(u.delay_warned), now, queue_id, u.address) for u in updates])
    return True


def _insert(conn: sqlite3.Connection, message: NewMessage, size: int, queued_at: float) -> None:
    conn.execute(
        "INSERT INTO messages (queue_id, sender, envid, ret, smtputf8, body_8bit, size, "
        "queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (message.queue_id, message.sender, message.envid, message.ret, int(message.smtputf8),
         int(message.body_8bit), size, queued_at))
    conn.executemany(
        "INSERT INTO recipients (queue_id, idx, address, domain, notify, orcpt, state, "
        "next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(message.queue_id, index, r.address, domain_of(r.address), ",".join(r.notify),
          r.orcpt,
          RecipientState.QUEUED.value, queued_at)
         for index, r in enumerate(message.recipients)])


def _recipient(row: sqlite3.Row) -> QueuedRecipient:
    return QueuedRecipient(
        address=row["address"], notify=tuple(_split(row["notify"])), orcpt=row["orcpt"],
        state=RecipientState(row["state"]), attempts=int(row["attempts"]),
        next_try=float(row["next_try"]), last_reply=row["last_reply"],
        remote_host=row["remote_host"], delay_warned=bool(row["delay_warned"]))


def _message(row: sqlite3.Row, recipients: list[QueuedRecipient]) -> QueuedMessage:
    return QueuedMessage(
        queue_id=row["queue_id"], sender=row["sender"], envid=row["envid"], ret=row["ret"],
        smtputf8=bool(row["smtputf8"]), body_8bit=bool(row["body_8bit"]),
        size=int(row["size"]), queued_at=float(row["queued_at"]),
        recipients=tuple(recipients))


def _split(text: str) -> Iterable[str]:
    return (part for part in text.split(",") if part)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
