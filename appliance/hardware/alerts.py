"""Alerts and history in mailstead.db (migration 0007_monitor.sql).

An alert is known by its key (a disk, an array, the mail file system). `AlertBook.update`
compares this poll's findings with the stored alerts and says what to tell the admin:
a new key is *raised*, a key whose level changed is *changed*, one still bad after
`monitor.reminder_hours` gets a *reminder*, and a key no longer found is *cleared*. Each
of those is mailed once; a problem that stays is not mailed every poll. `History` keeps
the time series (temperatures, space, bad-sector counts) for charts and the trend rule.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.hardware.rules.base import Finding, Snapshot
from appliance.hardware.rules.disk_health import bad_sectors
from appliance.storage.db import immediate_transaction

DAY = 86_400


@dataclass(frozen=True)
class StoredAlert:
    key: str
    level: str
    title: str
    text: str
    device: str
    state: str
    first_seen: int
    last_seen: int
    last_notified: int
    cleared_at: int | None


@dataclass(frozen=True)
class Notice:
    """Something to tell the admin: event is raised, changed, reminder or cleared."""

    event: str
    key: str
    level: str          # the finding's level; "ok" for cleared
    title: str
    text: str
    device: str
    first_seen: int


def decide(stored: StoredAlert | None, finding: Finding | None, now: int,
           reminder: int) -> str | None:
    """The event for one key (pure): raised, changed, reminder, cleared, or None."""
    active = stored is not None and stored.state == "active"
    if finding is None:
        return "cleared" if active else None
    if not active or stored is None:
        return "raised"
    if stored.level != finding.level:
        return "changed"
    return "reminder" if now - stored.last_notified >= reminder else None


class AlertBook:
    """The alerts table: see the module docstring."""

    def __init__(self, conn: sqlite3.Connection, reminder_seconds: int = DAY) -> None:
        self._conn = conn
        self._reminder = reminder_seconds

    def all(self, state: str | None = None) -> list[StoredAlert]:
        sql = "SELECT * FROM monitor_alerts"
        rows = (self._conn.execute(sql + " WHERE state = ? ORDER BY key", (state,))
                if state else self._conn.execute(sql + " ORDER BY key"))
        return [StoredAlert(**dict(r)) for r in rows]

    def update(self, findings: Iterable[Finding], now: int) -> list[Notice]:
        """Record this poll's findings; return what must be mailed."""
        found = {f.key: f for f in findings}
        notices: list[Notice] = []
        with immediate_transaction(self._conn):
            stored = {a.key: a for a in self.all()}
            for key in sorted(set(found) | {k for k, a in stored.items()
                                            if a.state == "active"}):
                notice = self._apply(stored.get(key), found.get(key), key, now)
                if notice is not None:
                    notices.append(notice)
        return notices

    def _apply(self, stored: StoredAlert | None, finding: Finding | None, key: str,
               now: int) -> Notice | None:
        event = decide(stored, finding, now, self._reminder)
        if finding is None:
            if event == "cleared" and stored is not None:
                self._conn.execute("UPDATE monitor_alerts SET state = 'cleared', "
                                   "cleared_at = ? WHERE key = ?", (now, key))
                self._event(key, "cleared", "ok", stored.title, now)
                return Notice("cleared", key, "ok", stored.title, stored.text, stored.device,
                              stored.first_seen)
            return None
        first = now if event == "raised" or stored is None else stored.first_seen
        notified = now if event else (stored.last_notified if stored else now)
        self._conn.execute(
            "INSERT OR REPLACE INTO monitor_alerts (key, level, title, text, device, state, "
            "first_seen, last_seen, last_notified, cleared_at) "
            "VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, NULL)",
            (key, finding.level, finding.title, finding.text, finding.device, first, now,
             notified))
        if event is None:
            return None
        self._event(key, event, finding.level, finding.title, now)
        return Notice(event, key, finding.level, finding.title, finding.text, finding.device,
                      first)

    def _event(self, key: str, event: str, level: str, title: str, now: int) -> None:
        self._conn.execute("INSERT INTO monitor_alert_events (key, event, level, title, at) "
                           "VALUES (?, ?, ?, ?, ?)", (key, event, level, title, now))

    def events(self, limit: int = 100) -> list[dict[str, object]]:
        rows = self._conn.execute("SELECT key, event, level, title, at FROM "
                                  "monitor_alert_events ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]


class History:
    """Time series and small state values of the monitor."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def record(self, snapshot: Snapshot, now: int) -> None:
        rows = list(_series(snapshot))
        with immediate_transaction(self._conn):
            self._conn.executemany("INSERT INTO monitor_series (kind, subject, at, value) "
                                   "VALUES (?, ?, ?, ?)", [(k, s, now, v) for k, s, v in rows])

    def baseline(self, now: int, kind: str = "bad_sectors") -> dict[str, float]:
        """The newest value of each subject recorded at least a day before `now`."""
        rows = self._conn.execute(
            "SELECT subject, value FROM monitor_series AS s WHERE kind = ? AND at = "
            "(SELECT MAX(at) FROM monitor_series WHERE kind = s.kind AND "
            "subject = s.subject AND at <= ?)", (kind, now - DAY))
        return {r["subject"]: float(r["value"]) for r in rows}

    def series(self, kind: str, subject: str, since: int) -> list[tuple[int, float]]:
        rows = self._conn.execute("SELECT at, value FROM monitor_series WHERE kind = ? AND "
                                  "subject = ? AND at >= ? ORDER BY at", (kind, subject, since))
        return [(int(r["at"]), float(r["value"])) for r in rows]

    def prune(self, now: int, days: int) -> None:
        with immediate_transaction(self._conn):
            self._conn.execute("DELETE FROM monitor_series WHERE at < ?", (now - days * DAY,))
            self._conn.execute("DELETE FROM monitor_alert_events WHERE at < ?",
                               (now - days * DAY,))

    def get(self, name: str) -> object:
        row = self._conn.execute("SELECT value FROM monitor_state WHERE name = ?",
                                 (name,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def put(self, name: str, value: object) -> None:
        with immediate_transaction(self._conn):
            self._conn.execute("INSERT OR REPLACE INTO monitor_state (name, value) "
                               "VALUES (?, ?)", (name, json.dumps(value)))


def _series(snapshot: Snapshot) -> Iterable[tuple[str, str, float]]:
    for disk in snapshot.disks:
        if disk.smart is None:
            continue
        if disk.smart.temperature is not None:
            yield "temperature", disk.ident, float(disk.smart.temperature)
        count = bad_sectors(disk.smart)
        if count is not None:
            yield "bad_sectors", disk.ident, float(count)
    for sensor in snapshot.temperatures:
        yield "temperature", f"{sensor.chip}:{sensor.label}", sensor.current
    if snapshot.space is not None:
        yield "space_percent", snapshot.space.path, round(snapshot.space.percent, 2)
        yield "inodes_percent", snapshot.space.path, round(snapshot.space.inodes_percent, 2)
