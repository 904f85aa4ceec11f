"""mailstead.db: opening SQLite in WAL mode and running the versioned schema migrations.

Migrations are the numbered `migrations/NNNN_name.sql` files, applied in order inside one
transaction each; `PRAGMA user_version` records the last one applied.

Rollback compatibility (issue 9: an update that fails its health check boots the previous
release again, on the same data partition). A release's migrations are additive: new
tables, new indexes, new columns that are NULL or have a DEFAULT; never a drop, a rename or
a changed meaning. The previous release then runs on the migrated database as it is, and
ignores what it does not know. A migration that cannot be additive says so in a line
`-- readable-by: N` (N: the newest migration of the oldest release that still works on it);
the table `schema_floor` keeps the highest such N, and a release whose own newest migration
is below it refuses the database. Such a migration must wait one release after the code that
stops depending on the old shape, so the release before it is never refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

DB_NAME = "mailstead.db"
DB_MODE = 0o660          # group read-write: see appliance/datadir.py
_READABLE_BY = re.compile(r"^--\s*readable-by:\s*(\d+)\s*$", re.MULTILINE)


def migrations() -> list[tuple[int, str, str]]:
    """All migrations shipped with the package as (version, name, sql), in order."""
    found = []
    for entry in resources.files("appliance.storage").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database with WAL, foreign keys and a busy timeout.
    A database this process owns is made group read-write (`DB_MODE`; SQLite gives its
    -wal and -shm files the same mode: see appliance/datadir.py for why)."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    with contextlib.suppress(FileNotFoundError):      # ":memory:" and the like
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 != DB_MODE:
            os.chmod(path, DB_MODE)
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

    A database that a newer release migrated is used as it is when its `schema_floor`
    allows this release (the rollback case); nothing is applied then.

    Raises:
        RuntimeError: the database is newer than this software and not readable by it.
    """
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    shipped = migrations()
    newest = shipped[-1][0] if shipped else 0
    if current > newest:
        floor = schema_floor(conn)
        if floor is None or floor > newest:
            raise RuntimeError(f"{DB_NAME} has schema version {current}, newer than this "
                               f"software's {newest} and not readable by it "
                               f"(readable by {floor or current} and newer): refusing to "
                               "run on it")
        return current              # a newer release's additive schema: used as it is
    for version, _name, sql in shipped:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            declared = readable_by(sql)
            if declared is not None:
                conn.execute("UPDATE schema_floor SET readable_by = max(readable_by, ?)",
                             (declared,))
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


def readable_by(sql: str) -> int | None:
    """The `-- readable-by: N` a migration declares, or None (an additive migration)."""
    found = _READABLE_BY.findall(sql)
    return max(int(n) for n in found) if found else None


def schema_floor(conn: sqlite3.Connection) -> int | None:
    """The oldest schema that may run on this database; None before migration 8."""
    try:
        row = conn.execute("SELECT max(readable_by) FROM schema_floor").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row is not None and row[0] is not None else None


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep one `;` per statement end)."""
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in body.split(";") if s.strip()]


def open_database(data_dir: Path) -> sqlite3.Connection:
    """Open `data_dir/mailstead.db` and bring its schema up to date."""
    conn = connect(data_dir / DB_NAME)
    migrate(conn)
    return conn
