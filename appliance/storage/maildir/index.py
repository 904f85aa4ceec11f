"""The per-account index `mailstead-index.db` (SQLite, WAL, synchronous=FULL): its schema,
opening it, and rebuilding it when it is missing, corrupt or of another version.

The Maildir is the truth; the index adds what a Maildir cannot hold (UIDs, UIDVALIDITY,
MODSEQ, expunge history, subscriptions, special use, keywords beyond 26) and can always be
rebuilt. A rebuild keeps whatever rows the old file still yields, so UIDs stay stable
when they can; folders it cannot recover get a new UIDVALIDITY (RFC 3501 2.3.1.1).
An index of an older version this code knows how to extend is upgraded in place instead
(version 1 lacks `intents`, version 2 the `messages.dirty` mark of deferred flag renames).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from appliance.core import log
from appliance.core.fsio import atomic_write
from appliance.storage.db import immediate_transaction

INDEX_NAME = "mailstead-index.db"
UIDVALIDITY_FILE = "mailstead-uidvalidity"
SCHEMA_VERSION = 3
# Versions upgraded in place: the tables they lack are created, the columns added
# (1: no `intents`, no `messages.dirty`; 2: no `messages.dirty`).
_UPGRADABLE = {1: frozenset({"intents"}), 2: frozenset[str]()}
_ADDED_COLUMNS = {"messages": {"dirty": "TEXT"}}

_TABLES = {
    "meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    "folders": ("id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                "uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL, "
                "highest_modseq INTEGER NOT NULL, special_use TEXT, "
                "recent_uid INTEGER NOT NULL"),
    "subscriptions": "name TEXT PRIMARY KEY",
    # base: the file name before ":2,"; subdir/filename: where the file is, or (dirty not
    # NULL) the name a deferred flag rename gives it; dirty: "subdir/name" the file has
    # until that rename is done (see `dirty`).
    "messages": ("folder_id INTEGER NOT NULL, uid INTEGER NOT NULL, base TEXT NOT NULL, "
                 "subdir TEXT NOT NULL, filename TEXT NOT NULL, flags TEXT NOT NULL, "
                 "modseq INTEGER NOT NULL, internal_date REAL NOT NULL, "
                 "size INTEGER NOT NULL, dirty TEXT, PRIMARY KEY (folder_id, uid), "
                 "UNIQUE (folder_id, base)"),
    # RFC 7162 3.2.5: what QRESYNC's VANISHED (EARLIER) reports.
    "expunged": ("folder_id INTEGER NOT NULL, uid INTEGER NOT NULL, "
                 "modseq INTEGER NOT NULL, PRIMARY KEY (folder_id, uid)"),
    "cache": ("folder_id INTEGER NOT NULL, uid INTEGER NOT NULL, key TEXT NOT NULL, "
              "value TEXT NOT NULL, PRIMARY KEY (folder_id, uid, key)"),
    # A COPY or MOVE under way (see `intents`): files is JSON [[subdir, source, link], ...].
    "intents": ("id INTEGER PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL, "
                "target TEXT NOT NULL, files TEXT NOT NULL"),
}
_INDEXES = ("CREATE INDEX IF NOT EXISTS messages_modseq ON messages (folder_id, modseq)",
            "CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged (folder_id, modseq)",
            "CREATE INDEX IF NOT EXISTS messages_dirty ON messages (folder_id, uid) "
            "WHERE dirty IS NOT NULL")
# What a rebuild copies from an old file, by column name (so other versions can yield rows).
_SALVAGE = {
    "meta": ("key", "value"),
    "folders": ("id", "name", "uidvalidity", "uidnext", "highest_modseq", "special_use",
                "recent_uid"),
    "subscriptions": ("name",),
    "messages": ("folder_id", "uid", "base", "subdir", "filename", "flags", "modseq",
                 "internal_date", "size", "dirty"),
    "expunged": ("folder_id", "uid", "modseq"),
    "intents": ("id", "kind", "source", "target", "files"),    # to be undone after the rebuild
}
# Salvaged columns an older file may lack (the rows are kept without them).
_OPTIONAL = frozenset({"dirty"})
Salvaged = dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]]


def open_index(root: Path) -> tuple[sqlite3.Connection, bool]:
    """Open the account's index, rebuilding a broken one; (connection, True if it is new)."""
    path = root / INDEX_NAME
    existed = path.exists()
    try:
        conn = _connect(path)
        if _usable(conn):
            return conn, False
        if _upgradable(conn):
            _create(conn)               # only the new tables, columns and indexes
            log.event("mailbox.index_upgraded", index=str(path), version=SCHEMA_VERSION)
            return conn, False
        if not existed or _empty(conn):
            _create(conn)
            return conn, True
        salvaged = _salvage(conn)
        conn.close()
        reason = "version"
    except sqlite3.DatabaseError as exc:
        salvaged, reason = {}, f"corrupt: {exc}"
    return _rebuild(path, salvaged, reason), True


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")   # UIDs handed out must survive a crash
    return conn


def _usable(conn: sqlite3.Connection) -> bool:
    if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        return False
    ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    return ok and _table_names(conn) >= set(_TABLES)


def _upgradable(conn: sqlite3.Connection) -> bool:
    """An intact index of an older version that lacks only tables added since."""
    added = _UPGRADABLE.get(conn.execute("PRAGMA user_version").fetchone()[0])
    if added is None or conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        return False
    return _table_names(conn) >= set(_TABLES) - added


def _empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("PRAGMA user_version").fetchone()[0] == 0 and not _table_names(conn)


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(row[0]) for row in rows}


def _create(conn: sqlite3.Connection) -> None:
    """Create what is missing (all of it in a new file; in an upgradable one the tables and
    columns added since its version), in one transaction: two processes upgrading at once
    take turns, and the second finds nothing left to add."""
    with write(conn):
        for table, columns in _TABLES.items():
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        for table, added in _ADDED_COLUMNS.items():
            have = _column_names(conn, table)
            for column, kind in added.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for statement in _INDEXES:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")


def _column_names(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def _salvage(conn: sqlite3.Connection) -> Salvaged:
    """Rows of an unusable index that can still be read (per table, with the columns read;
    unreadable tables skipped, optional columns an older file lacks left out)."""
    found: Salvaged = {}
    for table, wanted in _SALVAGE.items():
        try:
            have = _column_names(conn, table)
            columns = tuple(c for c in wanted if c in have or c not in _OPTIONAL)
            found[table] = (columns, conn.execute(
                f"SELECT {', '.join(columns)} FROM {table}").fetchall())  # noqa: S608
        except sqlite3.DatabaseError:
            continue
    if "messages" in found and "folders" not in found:
        del found["messages"]      # UIDs mean nothing without their folder's UIDVALIDITY
    return found


def _rebuild(path: Path, salvaged: Salvaged, reason: str) -> sqlite3.Connection:
    """Move the old file aside (one copy kept for inspection) and start a new index."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(path.name + ".broken"))
    log.event("mailbox.index_rebuilt", index=str(path), reason=reason,
              folders=len(salvaged.get("folders", ((), []))[1]),
              messages=len(salvaged.get("messages", ((), []))[1]))
    conn = _connect(path)
    _create(conn)
    with write(conn):
        for table, (names, rows) in salvaged.items():
            columns, marks = ", ".join(names), ", ".join("?" * len(names))
            sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
            conn.executemany(sql, rows)
    return conn


# One write transaction holding SQLite's write lock from the start (BEGIN IMMEDIATE), so a
# reconciliation reads and writes without another process in between.
write = immediate_transaction


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits to the index (cheap, no I/O)."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def next_uidvalidity(root: Path) -> int:
    """A UIDVALIDITY never used before in this account: the time, but always above the last
    one handed out (kept in a small file beside the index, so it survives a rebuild).
    Callers hold the index write lock."""
    path = root / UIDVALIDITY_FILE
    try:
        last = int(path.read_text(encoding="ascii").strip() or 0)
    except (FileNotFoundError, ValueError):
        last = 0
    value = max(int(time.time()), last + 1) & 0xFFFFFFFF or 1
    atomic_write(path, f"{value}\n".encode("ascii"))
    return value
