"""mailstead.db: opening SQLite in WAL mode and running the versioned schema migrations.

Migrations are the numbered `migrations/NNNN_name.sql` files, applied in order inside one
transaction each; `PRAGMA user_version` records the last one applied.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

DB_NAME = "mailstead.db"


def migrations() -> list[tuple[int, str, str]]:
    """All migrations shipped with the package as (version, name, sql), in order."""
    found = []
    for entry in resources.files("appliance.storage").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database with WAL, foreign keys and a busy timeout."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes SQLite's write lock at once (BEGIN IMMEDIATE: two
    writers queue on the busy timeout instead of both reading and then deadlocking on the
    upgrade); COMMIT at the end, ROLLBACK on any error. For connections opened with
    `isolation_level=None` (we manage transactions ourselves)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; return the resulting version.

    Raises:
        RuntimeError: the database is newer than this software (a downgrade).
    """
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    shipped = migrations()
    newest = shipped[-1][0] if shipped else 0
    if current > newest:
        raise RuntimeError(f"{DB_NAME} has schema version {current}, newer than this "
                           f"software's {newest}: refusing to run on it")
    for version, _name, sql in shipped:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep one `;` per statement end)."""
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in body.split(";") if s.strip()]


def open_database(data_dir: Path) -> sqlite3.Connection:
    """Open `data_dir/mailstead.db` and bring its schema up to date."""
    conn = connect(data_dir / DB_NAME)
    migrate(conn)
    return conn
