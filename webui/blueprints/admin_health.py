"""What the health page shows from the hardware monitor's tables in mailstead.db (migration
0007_monitor.sql, `appliance.hardware.alerts`): active alerts, recent alert events, and
the last week of each time series drawn as a small SVG line (no script: CSP forbids it).

When the monitor's tables are missing or empty the page says so instead.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from appliance.hardware.alerts import AlertBook, History, StoredAlert

CHART_DAYS = 7
CHART_WIDTH, CHART_HEIGHT = 300, 60
MAX_SERIES = 40                  # charts on one page; more subjects are left out (said so)
UNITS = {"temperature": "°C", "space_percent": "%", "inodes_percent": "%", "bad_sectors": ""}
TITLES = {"temperature": "Temperature", "space_percent": "Space used",
          "inodes_percent": "Inodes used", "bad_sectors": "Bad sectors"}


@dataclass(frozen=True)
class Chart:
    """One time series: what it measures, its newest value and the SVG polyline points."""

    kind: str
    subject: str
    latest: float
    low: float
    high: float
    points: str

    @property
    def title(self) -> str:
        return TITLES.get(self.kind, self.kind)

    @property
    def unit(self) -> str:
        return UNITS.get(self.kind, "")


@dataclass(frozen=True)
class MonitorView:
    """Everything the health page shows from the monitor; `present` is False without its
    tables (the monitor is not installed), `reported` False before its first poll."""

    present: bool
    reported: bool = False
    alerts: tuple[StoredAlert, ...] = ()
    charts: tuple[Chart, ...] = ()
    more_series: int = 0


def polyline(samples: list[tuple[int, float]], start: int, end: int,
             width: int = CHART_WIDTH, height: int = CHART_HEIGHT) -> str:
    """SVG `points` for samples (time, value) over [start, end]: time left to right, the
    lowest value at the bottom and the highest at the top (a flat line in the middle)."""
    if not samples:
        return ""
    values = [v for _, v in samples]
    low, high = min(values), max(values)
    span_t, span_v = max(end - start, 1), high - low
    return " ".join(
        f"{(t - start) * width / span_t:.1f},"
        f"{height / 2 if span_v == 0 else height - (v - low) * height / span_v:.1f}"
        for t, v in samples)


def monitor_view(conn: sqlite3.Connection, now: float | None = None) -> MonitorView:
    """Read the monitor's alerts and last week of history."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                         "AND name = 'monitor_alerts'").fetchone()
    if found is None:
        return MonitorView(present=False)
    end = int(time.time() if now is None else now)
    start = end - CHART_DAYS * 86_400
    subjects = conn.execute("SELECT DISTINCT kind, subject FROM monitor_series WHERE at >= ? "
                            "ORDER BY kind, subject", (start,)).fetchall()
    history = History(conn)
    charts = []
    for kind, subject in subjects[:MAX_SERIES]:
        samples = history.series(kind, subject, start)
        values = [v for _, v in samples]
        charts.append(Chart(kind, subject, values[-1], min(values), max(values),
                            polyline(samples, start, end)))
    alerts = tuple(AlertBook(conn).all("active"))
    reported = bool(subjects) or bool(alerts) or conn.execute(
        "SELECT 1 FROM monitor_state LIMIT 1").fetchone() is not None
    return MonitorView(True, reported, alerts, tuple(charts),
                       max(0, len(subjects) - MAX_SERIES))
