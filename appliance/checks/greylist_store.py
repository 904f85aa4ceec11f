"""The greylisting database: `greylist.db` (SQLite, WAL) in the data directory, shared by
every MX worker process.

Three tables: the triplets seen (client network, sender, recipient) with when each was first
seen and whether a retry passed; the auto-allowlist of (client network, sender domain) pairs
that passed a retry; and the sender domains, authenticated by SPF or DKIM, whose mail we
accepted. Each decision is one `BEGIN IMMEDIATE` transaction, so concurrent workers never
both see a triplet as new; a busy timeout makes them wait for each other instead of failing.
This is not mail data (losing it only greylists again): no fsync discipline beyond SQLite's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.storage.db import immediate_transaction

FILE_NAME = "greylist.db"
BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS triplets (
    network TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, passed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (network, sender, recipient)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS allowed (
    network TEXT NOT NULL, domain TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (network, domain)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS known_senders (
    domain TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Triplet:
    """What greylisting keys on: the client network, the envelope sender, one recipient."""

    network: str
    sender: str
    recipient: str


@dataclass(frozen=True)
class Timing:
    """The `greylist.*` times, in seconds."""

    delay: float
    expire: float
    allow_for: float


@dataclass(frozen=True)
class Outcome:
    """A decision on one message: pass or defer, and why (for the log)."""

    passed: bool
    why: str


class GreylistStore:
    """The database; every method is blocking (run it in a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened (and the schema made) on first use, under the lock: the
        engine builds its checks before it knows whether a message will ever come."""
        if self._connection is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                 isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            self._connection = db
        return self._connection

    @classmethod
    def in_directory(cls, data_dir: Path) -> GreylistStore:
        return cls(data_dir / FILE_NAME)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def decide(self, triplets: Iterable[Triplet], sender_domain: str,
               authenticated: frozenset[str], now: float, timing: Timing) -> Outcome:
        """Record the attempt and decide: pass if the sender domain is authenticated and
        known, or the (network, sender domain) is allowlisted, or every triplet's retry
        came at least `delay` and at most `expire` after its first attempt."""
        items = list(triplets)
        with self._lock, immediate_transaction(self._db):
            outcome = self._bypass(items, sender_domain, authenticated, now)
            if outcome is None:
                outcome = self._triplets(items, now, timing)
            if outcome.passed:
                self._remember(items, sender_domain, authenticated, now, timing)
            return outcome

    def prune(self, now: float, timing: Timing) -> int:
        """Delete unpassed triplets past `expire`, passed ones and allowlist entries past
        their allowlist time; return how many rows went."""
        with self._lock, immediate_transaction(self._db):
            removed = self._db.execute(
                "DELETE FROM triplets WHERE (passed = 0 AND first_seen < ?) OR last_seen < ?",
                (now - timing.expire, now - timing.allow_for)).rowcount
            for table in ("allowed", "known_senders"):
                removed += self._db.execute(f"DELETE FROM {table} WHERE expires < ?",  # noqa: S608
                                            (now,)).rowcount
            return int(removed)

    def counts(self) -> dict[str, int]:
        """Rows per table (for tests and status)."""
        with self._lock:
            return {t: int(self._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # noqa: S608
                    for t in ("triplets", "allowed", "known_senders")}

    def _bypass(self, items: list[Triplet], sender_domain: str, authenticated: frozenset[str],
                now: float) -> Outcome | None:
        known = self._db.execute(
            f"SELECT domain FROM known_senders WHERE expires >= ? AND domain IN "  # noqa: S608
            f"({','.join('?' * len(authenticated))})", (now, *sorted(authenticated))
        ).fetchone() if authenticated else None
        if known is not None:
            return Outcome(True, f"authenticated sender domain {known[0]} seen before")
        networks = sorted({t.network for t in items})
        allowed = self._db.execute(
            f"SELECT network FROM allowed WHERE domain = ? AND expires >= ? AND network IN "  # noqa: S608
            f"({','.join('?' * len(networks))})", (sender_domain, now, *networks)).fetchone()
        if allowed is not None:
            return Outcome(True, f"allowlisted: {allowed[0]} sending for {sender_domain!r}")
        return None

    def _triplets(self, items: list[Triplet], now: float, timing: Timing) -> Outcome:
        waiting = [self._triplet(t, now, timing) for t in items]
        pending = [w for w in waiting if w is not None]
        if pending:
            return Outcome(False, pending[0])
        return Outcome(True, "retried after the greylisting delay")

    def _triplet(self, item: Triplet, now: float, timing: Timing) -> str | None:
        """Record one triplet's attempt; None when it passes, else why it waits."""
        key = (item.network, item.sender, item.recipient)
        row = self._db.execute(
            "SELECT first_seen, passed FROM triplets WHERE network = ? AND sender = ? "
            "AND recipient = ?", key).fetchone()
        if row is None or (not row[1] and now - row[0] > timing.expire):
            self._db.execute(
                "INSERT OR REPLACE INTO triplets (network, sender, recipient, first_seen, "
                "last_seen, passed) VALUES (?, ?, ?, ?, ?, 0)", (*key, now, now))
            return "first attempt" if row is None else "retry came after greylist.expire"
        first_seen, passed = float(row[0]), bool(row[1])
        if not passed and now - first_seen < timing.delay:
            self._db.execute("UPDATE triplets SET last_seen = ? WHERE network = ? AND "
                             "sender = ? AND recipient = ?", (now, *key))
            return f"retry {now - first_seen:.0f}s after the first, before greylist.delay"
        self._db.execute("UPDATE triplets SET last_seen = ?, passed = 1 WHERE network = ? "
                         "AND sender = ? AND recipient = ?", (now, *key))
        return None

    def _remember(self, items: list[Triplet], sender_domain: str,
                  authenticated: frozenset[str], now: float, timing: Timing) -> None:
        """A message passed: allowlist its networks for the sender domain, and remember its
        authenticated domains, for `allow_for` seconds from now."""
        until = now + timing.allow_for
        self._db.executemany(
            "INSERT OR REPLACE INTO allowed (network, domain, expires) VALUES (?, ?, ?)",
            [(n, sender_domain, until) for n in sorted({t.network for t in items})])
        self._db.executemany(
            "INSERT OR REPLACE INTO known_senders (domain, expires) VALUES (?, ?)",
            [(d, until) for d in sorted(authenticated)])
