"""mailstead.db: migrations run once, in order, inside a transaction; downgrades are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.storage import db


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in rows}


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [v for v, _name, _sql in db.migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_migrate_applies_schema_and_records_version(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / db.DB_NAME)
    newest = db.migrations()[-1][0]
    assert user_version(conn) == 0
    assert db.migrate(conn) == newest
    assert user_version(conn) == newest
    assert {"domains", "accounts", "aliases", "settings"} <= tables(conn)


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    conn = db.open_database(tmp_path)
    conn.execute("INSERT INTO domains (name, created_at) VALUES ('example.org', 0)")
    conn.close()
    again = db.open_database(tmp_path)
    assert db.migrate(again) == db.migrations()[-1][0]
    assert [r[0] for r in again.execute("SELECT name FROM domains")] == ["example.org"]


def test_migrations_apply_only_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = db.open_database(tmp_path)
    applied: list[int] = []
    shipped = db.migrations()
    extra = (len(shipped) + 1, "9999_extra.sql", "CREATE TABLE extra (x INTEGER);")
    monkeypatch.setattr(db, "migrations", lambda: [*shipped, extra])
    real_statements = db._statements

    def counting(sql: str) -> list[str]:
        applied.append(len(sql))
        return real_statements(sql)

    monkeypatch.setattr(db, "_statements", counting)
    assert db.migrate(conn) == extra[0]
    assert db.migrate(conn) == extra[0]
    assert len(applied) == 1            # only the new migration ran, and only once
    assert "extra" in tables(conn)


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = db.open_database(tmp_path)
    before = user_version(conn)
    shipped = db.migrations()
    broken = (before + 1, "0099_broken.sql",
              "CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);")
    monkeypatch.setattr(db, "migrations", lambda: [*shipped, broken])
    with pytest.raises(sqlite3.OperationalError):
        db.migrate(conn)
    assert user_version(conn) == before
    assert "half" not in tables(conn)


def test_immediate_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    conn = db.open_database(tmp_path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    with db.immediate_transaction(conn):
        assert conn.in_transaction
        conn.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction

    def insert_then_fail() -> None:
        with db.immediate_transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise sqlite3.IntegrityError("abort")
    with pytest.raises(sqlite3.IntegrityError, match="abort"):
        insert_then_fail()
    assert not conn.in_transaction
    other = db.open_database(tmp_path)             # committed rows are seen elsewhere
    assert [r[0] for r in other.execute("SELECT x FROM t")] == [1]


def test_a_newer_releases_additive_schema_is_used_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollback case: release N+1 added a table and a column; release N runs on it."""
    shipped = db.migrations()
    newest = shipped[-1][0]
    additive = (newest + 1, f"{newest + 1:04d}_more.sql",
                "CREATE TABLE later (x INTEGER);\n"
                "ALTER TABLE domains ADD COLUMN note TEXT DEFAULT '';")
    monkeypatch.setattr(db, "migrations", lambda: [*shipped, additive])
    db.open_database(tmp_path).close()                  # as N+1
    monkeypatch.setattr(db, "migrations", lambda: shipped)
    conn = db.open_database(tmp_path)                   # N again, after the rollback
    assert user_version(conn) == newest + 1
    conn.execute("INSERT INTO domains (name, created_at) VALUES ('example.org', 0)")
    assert [r[0] for r in conn.execute("SELECT name FROM domains")] == ["example.org"]


def test_a_migration_that_breaks_old_readers_makes_them_refuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = db.migrations()
    newest = shipped[-1][0]
    breaking = (newest + 1, f"{newest + 1:04d}_drop.sql",
                f"-- readable-by: {newest + 1}\nDROP TABLE schema_floor_probe;")
    setup = (newest + 1, "x", "CREATE TABLE schema_floor_probe (x INTEGER);")
    monkeypatch.setattr(db, "migrations", lambda: [*shipped, setup])
    db.open_database(tmp_path).close()
    conn = db.connect(tmp_path / db.DB_NAME)
    conn.execute(f"PRAGMA user_version = {newest}")     # as if only `breaking` were new
    conn.close()
    monkeypatch.setattr(db, "migrations", lambda: [*shipped, breaking])
    conn = db.open_database(tmp_path)
    assert db.schema_floor(conn) == newest + 1
    conn.close()
    monkeypatch.setattr(db, "migrations", lambda: shipped)
    with pytest.raises(RuntimeError, match=f"schema version {newest + 1}, newer .* not readable"):
        db.open_database(tmp_path)


def test_a_newer_database_without_a_floor_is_refused(tmp_path: Path) -> None:
    conn = db.open_database(tmp_path)
    newest = db.migrations()[-1][0]
    conn.execute("DROP TABLE schema_floor")
    conn.execute(f"PRAGMA user_version = {newest + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match=f"schema version {newest + 1}, newer"):
        db.open_database(tmp_path)


def test_readable_by_is_read_from_the_migration_text() -> None:
    assert db.readable_by("CREATE TABLE t (x INTEGER);") is None
    assert db.readable_by("-- readable-by: 12\nDROP TABLE t;") == 12
    assert db.readable_by("--readable-by:3\n-- readable-by: 5\n") == 5


def test_connect_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    conn = db.open_database(tmp_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO accounts (domain_id, local_part, local_key, password_hash, "
                     "maildir, created_at) VALUES (42, 'a', 'a', 'h', 'm', 0)")


def test_statements_strip_comments() -> None:
    sql = "-- heading\nCREATE TABLE a (x INTEGER); -- trailing\n\nCREATE TABLE b (y TEXT);\n"
    assert db._statements(sql) == ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y TEXT)"]
