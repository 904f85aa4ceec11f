"""Alerts: a state change is mailed once, a problem that stays at most daily, a cleared
one is recorded; history gives the trend rule its baseline. Real SQLite in a tmp dir."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.hardware.alerts import DAY, AlertBook, History, StoredAlert, decide
from appliance.hardware.readers.system import SpaceReading
from appliance.hardware.rules.base import CRITICAL, WARNING, Finding, Snapshot
from appliance.storage.db import open_database

T0 = 1_800_000_000


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path)
    yield connection
    connection.close()


def finding(level: str = CRITICAL, key: str = "raid:md0") -> Finding:
    return Finding(key, level, f"RAID /dev/md0 is {level}", "text", "/dev/md0")


def stored(level: str, state: str = "active", notified: int = T0) -> StoredAlert:
    return StoredAlert("k", level, "t", "x", "", state, T0, T0, notified, None)


@pytest.mark.parametrize(("before", "now_level", "at", "event"), [
    (None, CRITICAL, T0, "raised"),
    (stored(CRITICAL), CRITICAL, T0 + 60, None),
    (stored(CRITICAL), CRITICAL, T0 + DAY - 1, None),
    (stored(CRITICAL), CRITICAL, T0 + DAY, "reminder"),
    (stored(WARNING), CRITICAL, T0 + 60, "changed"),
    (stored(CRITICAL), None, T0 + 60, "cleared"),
    (stored(CRITICAL, "cleared"), None, T0 + 60, None),
    (stored(CRITICAL, "cleared"), CRITICAL, T0 + 60, "raised")])
def test_decide_table(before: StoredAlert | None, now_level: str | None, at: int,
                      event: str | None) -> None:
    found = finding(now_level) if now_level else None
    assert decide(before, found, at, DAY) == event


def test_alert_fires_once_per_state_change_and_clears(conn: sqlite3.Connection) -> None:
    book = AlertBook(conn, reminder_seconds=DAY)
    events = []
    for minute, findings in enumerate([[finding(WARNING)], [finding(WARNING)],
                                       [finding(CRITICAL)], [finding(CRITICAL)], [], []]):
        events.append([n.event for n in book.update(findings, T0 + 60 * minute)])
    assert events == [["raised"], [], ["changed"], [], ["cleared"], []]
    (alert,) = book.all()
    assert (alert.state, alert.cleared_at, alert.first_seen) == ("cleared", T0 + 240, T0)
    assert [e["event"] for e in reversed(book.events())] == ["raised", "changed", "cleared"]


def test_still_bad_is_reminded_at_most_daily(conn: sqlite3.Connection) -> None:
    book = AlertBook(conn, reminder_seconds=DAY)
    assert [n.event for n in book.update([finding()], T0)] == ["raised"]
    sent = [bool(book.update([finding()], T0 + hour * 3600)) for hour in range(1, 50)]
    assert sent.count(True) == 2
    assert sent.index(True) == 23
    assert book.all("active")[0].first_seen == T0


def test_a_new_episode_after_clearing(conn: sqlite3.Connection) -> None:
    book = AlertBook(conn)
    book.update([finding()], T0)
    book.update([], T0 + 60)
    (notice,) = book.update([finding()], T0 + 120)
    assert notice.event == "raised"
    assert notice.first_seen == T0 + 120


def test_independent_keys(conn: sqlite3.Connection) -> None:
    book = AlertBook(conn)
    book.update([finding(key="raid:md0")], T0)
    notices = book.update([finding(key="raid:md0"), finding(WARNING, "space:/d")], T0 + 1)
    assert [(n.key, n.event) for n in notices] == [("space:/d", "raised")]


def test_history_series_baseline_prune_and_state(conn: sqlite3.Connection) -> None:
    history = History(conn)
    space = SpaceReading("/d", 100, 50, 50, 10, 5)
    history.record(Snapshot(0.0, space=space), T0)
    history.record(Snapshot(0.0, space=SpaceReading("/d", 100, 60, 40, 10, 5)), T0 + DAY)
    assert history.series("space_percent", "/d", T0) == [(T0, 50.0), (T0 + DAY, 60.0)]
    assert history.baseline(T0 + DAY, "space_percent") == {"/d": 50.0}
    assert history.baseline(T0 + DAY - 1, "space_percent") == {}
    history.prune(T0 + 3 * DAY, days=2)
    assert history.series("space_percent", "/d", 0) == [(T0 + DAY, 60.0)]
    history.put("selftest:X", {"short": 1.0})
    assert history.get("selftest:X") == {"short": 1.0}
    assert history.get("nothing") is None
