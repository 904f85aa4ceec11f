"""The classifier's token counts in SQLite: `data_dir/spam/bayes.db` (WAL), one model per
account plus the global model (account ""). Several processes use it at once (the MX
workers score, the IMAP trainer and `mailstead spam train` learn): every change is one
`BEGIN IMMEDIATE` transaction, readers see a consistent snapshot, a busy database is waited
for (`BUSY_TIMEOUT_MS`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.spam.classifier import Counts, Model
from appliance.storage.db import immediate_transaction

GLOBAL = ""                  # the account name of the global model
BUSY_TIMEOUT_MS = 10_000     # a learner holds the write lock for milliseconds, not seconds
BATCH = 500                  # tokens per SELECT (well under SQLite's parameter limit)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    account TEXT NOT NULL, token TEXT NOT NULL,
    spam INTEGER NOT NULL DEFAULT 0, ham INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, token)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    account TEXT PRIMARY KEY, nspam INTEGER NOT NULL DEFAULT 0,
    nham INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    account TEXT NOT NULL, message TEXT NOT NULL, is_spam INTEGER NOT NULL,
    PRIMARY KEY (account, message)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class ModelStats:
    """One model as `mailstead spam stats` shows it."""

    account: str
    nspam: int
    nham: int
    tokens: int


def db_path(data_dir: Path) -> Path:
    return data_dir / "spam" / "bayes.db"


class TokenStore:
    """The counts of every model; one connection, usable from several threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000,
                                     isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            self._set_up()
        except BaseException:
            self._conn.close()
            raise

    def _set_up(self) -> None:
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")   # counts, not mail: a lost
        with self.writing() as conn:                        # last commit costs little
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue instead of deadlocking)."""
        with self._lock, immediate_transaction(self._conn) as conn:
            yield conn

    def model(self, account: str) -> Model:
        with self._lock:
            return _model(self._conn, account)

    def lookup(self, account: str, tokens: Iterable[str]) -> tuple[Model, dict[str, Counts]]:
        """The model's totals and the counts of those `tokens` it has seen, as one
        consistent read."""
        wanted = list(tokens)
        found: dict[str, Counts] = {}
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                model = _model(self._conn, account)
                for start in range(0, len(wanted), BATCH):
                    found.update(_counts(self._conn, account, wanted[start:start + BATCH]))
            finally:
                self._conn.execute("COMMIT")
        return model, found

    def stats(self) -> list[ModelStats]:
        """Every model, the global one first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT t.account, t.nspam, t.nham, (SELECT COUNT(*) FROM tokens k "
                "WHERE k.account = t.account) FROM totals t ORDER BY t.account").fetchall()
        return [ModelStats(a, s, h, n) for a, s, h, n in rows]


def _model(conn: sqlite3.Connection, account: str) -> Model:
    row = conn.execute("SELECT nspam, nham FROM totals WHERE account = ?",
                       (account,)).fetchone()
    return Model(0, 0) if row is None else Model(int(row[0]), int(row[1]))


def _counts(conn: sqlite3.Connection, account: str, tokens: list[str]) -> dict[str, Counts]:
    marks = ",".join("?" * len(tokens))
    rows = conn.execute(f"SELECT token, spam, ham FROM tokens WHERE account = ? "  # noqa: S608
                        f"AND token IN ({marks})", (account, *tokens))
    return {token: Counts(int(spam), int(ham)) for token, spam, ham in rows}


def add_counts(conn: sqlite3.Connection, account: str, tokens: Collection[str],
               is_spam: bool, delta: int) -> None:
    """Inside `writing()`: add `delta` (+1 learn, -1 unlearn) to one class of each token
    and to the model's message total; counts never go below zero, empty rows go."""
    column = "spam" if is_spam else "ham"
    total = "nspam" if is_spam else "nham"
    rows = [(account, token, max(delta, 0), delta) for token in tokens]
    conn.executemany(
        f"INSERT INTO tokens (account, token, {column}) VALUES (?, ?, ?) "  # noqa: S608
        f"ON CONFLICT (account, token) DO UPDATE SET {column} = MAX({column} + ?, 0)", rows)
    if delta < 0:
        conn.executemany("DELETE FROM tokens WHERE account = ? AND token = ? AND spam = 0 "
                         "AND ham = 0", [(account, token) for token in tokens])
    conn.execute(f"INSERT INTO totals (account, {total}) VALUES (?, ?) "  # noqa: S608
                 f"ON CONFLICT (account) DO UPDATE SET {total} = MAX({total} + ?, 0)",
                 (account, max(delta, 0), delta))


def seen_as(conn: sqlite3.Connection, account: str, message: str) -> bool | None:
    """How `message` (its digest) was learned for `account`: True spam, False ham, None not."""
    row = conn.execute("SELECT is_spam FROM seen WHERE account = ? AND message = ?",
                       (account, message)).fetchone()
    return None if row is None else bool(row[0])


def mark_seen(conn: sqlite3.Connection, account: str, message: str, is_spam: bool) -> None:
    conn.execute("INSERT INTO seen (account, message, is_spam) VALUES (?, ?, ?) "
                 "ON CONFLICT (account, message) DO UPDATE SET is_spam = excluded.is_spam",
                 (account, message, int(is_spam)))
