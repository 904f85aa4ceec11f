"""Stored DNS check results and the alerts their changes raise (tables of migration 0006).

`save` replaces the results of the scopes it was given (a domain, or "" for the server's
own checks) and adds a `dns_alerts` row for each check whose state differs from the last
stored one; a first check of a record raises no alert. The DNS page lists the alerts and
`dns_notify.mail_alerts` mails them to the admin after the daily re-check.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.settings import Settings
from appliance.storage.db import immediate_transaction
from appliance.storage.directory import SqliteDirectory
from webui.dns_check import SERVER, Result, run_checks

DAILY = 86_400          # seconds between automatic re-checks
ALERTS_SHOWN = 50


@dataclass(frozen=True)
class Stored:
    """A stored result and when it was checked (Unix seconds)."""

    result: Result
    checked_at: int


@dataclass(frozen=True)
class Alert:
    id: int
    created_at: int
    domain: str
    key: str
    name: str
    rtype: str
    old_state: str
    new_state: str
    note: str


_INSERT = ("INSERT OR REPLACE INTO dns_checks (domain, record_key, purpose, name, rtype, "
           "expected, found, state, note, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_SELECT = ("SELECT domain, record_key, purpose, name, rtype, expected, found, state, note, "
           "checked_at FROM dns_checks WHERE domain = ? ORDER BY rowid")


def save(conn: sqlite3.Connection, results: Sequence[Result], now: int | None = None
         ) -> list[Alert]:
    """Store `results` (replacing their scopes' earlier rows); return the new alerts."""
    stamp = int(time.time()) if now is None else now
    scopes = sorted({r.domain for r in results})
    with immediate_transaction(conn):
        before = {(row["domain"], row["record_key"]): str(row["state"]) for scope in scopes
                  for row in conn.execute("SELECT domain, record_key, state FROM dns_checks"
                                          " WHERE domain = ?", (scope,))}
        conn.executemany("DELETE FROM dns_checks WHERE domain = ?", [(s,) for s in scopes])
        conn.executemany(_INSERT, [(*_row(r), stamp) for r in results])
        return [_alert(conn, stamp, r, before[(r.domain, r.key)]) for r in results
                if before.get((r.domain, r.key), r.state) != r.state]


def _alert(conn: sqlite3.Connection, stamp: int, result: Result, old: str) -> Alert:
    cursor = conn.execute(
        "INSERT INTO dns_alerts (created_at, domain, record_key, name, rtype, old_state,"
        " new_state, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (stamp, result.domain, result.key, result.name, result.rtype, old, result.state,
         result.note))
    return Alert(int(cursor.lastrowid or 0), stamp, result.domain, result.key, result.name,
                 result.rtype, old, result.state, result.note)


def _row(result: Result) -> tuple[str, ...]:
    return (result.domain, result.key, result.purpose, result.name, result.rtype,
            result.expected, result.found, result.state, result.note)


def latest(conn: sqlite3.Connection, domain: str) -> list[Stored]:
    """The stored results of `domain` ("" = the server's checks), in check order."""
    rows = conn.execute(_SELECT, (domain,))
    return [Stored(Result(*(str(row[i]) for i in range(9))), int(row["checked_at"]))
            for row in rows]


def alerts(conn: sqlite3.Connection, limit: int = ALERTS_SHOWN) -> list[Alert]:
    """The newest alerts first."""
    rows = conn.execute("SELECT id, created_at, domain, record_key, name, rtype, old_state,"
                        " new_state, note FROM dns_alerts ORDER BY id DESC LIMIT ?", (limit,))
    return [Alert(int(r[0]), int(r[1]), *(str(r[i]) for i in range(2, 9))) for r in rows]


def last_checked(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT max(checked_at) FROM dns_checks").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def checked_before(conn: sqlite3.Connection, domains: Sequence[str] | None = None) -> bool:
    """Whether results are stored for any of `domains` (every scope when None): a check
    now is then a re-check whose changes mean something."""
    if domains is None:
        return last_checked(conn) is not None
    return any(conn.execute("SELECT 1 FROM dns_checks WHERE domain = ? LIMIT 1", (d,)
                            ).fetchone() is not None for d in domains)


def check_and_save(settings: Settings, conn: sqlite3.Connection,
                   domains: Sequence[str] | None = None) -> list[Alert]:
    """Check `domains` (all local domains when None) and the server; store; return alerts."""
    names = SqliteDirectory(conn).list_domains() if domains is None else list(domains)
    results = run_checks(settings, names)
    if domains is None:   # domains removed since the last check leave no stale rows
        with immediate_transaction(conn):
            conn.execute("DELETE FROM dns_checks WHERE domain NOT IN (SELECT name FROM "
                         "domains) AND domain != ?", (SERVER,))
    return save(conn, results)


def due(conn: sqlite3.Connection, now: float, interval: int = DAILY) -> bool:
    """Whether a full check is due: some local domain or the server was never checked, or
    the oldest stored result is `interval` seconds old."""
    row = conn.execute("SELECT min(checked_at), count(DISTINCT domain) FROM dns_checks "
                       "WHERE domain = ? OR domain IN (SELECT name FROM domains)",
                       (SERVER,)).fetchone()
    domains = conn.execute("SELECT count(*) FROM domains").fetchone()[0]
    if row[0] is None or int(row[1]) < int(domains) + 1:
        return True
    return now - int(row[0]) >= interval


def daily_recheck(settings: Settings, conn: sqlite3.Connection,
                  now: float | None = None) -> list[Alert] | None:
    """The daily re-check for a timer or the engine: checks everything when `due`; None
    when it was not."""
    if not due(conn, time.time() if now is None else now):
        return None
    return check_and_save(settings, conn)
