"""Temperatures: each disk against the limits for its kind (HDD, SSD, NVMe; settings
`monitor.*_temperature_*`), the NVMe drive's own temperature warning, and the host's
sensors against the high/critical points their chips report."""

from __future__ import annotations

from appliance.hardware.readers.system import Temperature
from appliance.hardware.rules.base import CRITICAL, WARNING, Disk, Finding, Snapshot, Thresholds


def check(snapshot: Snapshot, limits: Thresholds) -> list[Finding]:
    found = [f for f in (_disk(d, limits) for d in snapshot.disks) if f is not None]
    return found + [f for f in (_sensor(t) for t in snapshot.temperatures) if f is not None]


def _disk(disk: Disk, limits: Thresholds) -> Finding | None:
    report = disk.smart
    if report is None or report.temperature is None:
        return None
    warn, critical = limits.temperature.get(report.kind, limits.temperature["unknown"])
    if report.drive_trip_temperature:        # SAS drives state their own trip point
        critical = min(critical, report.drive_trip_temperature)
    current = report.temperature
    level = CRITICAL if current >= critical else WARNING if current >= warn else None
    if level is None:
        return None
    return Finding(f"temperature:{disk.ident}", level,
                   f"Disk {disk.devnode} is hot: {current} °C",
                   f"{disk.label} is at {current} °C (warning from {warn} °C, critical from "
                   f"{critical} °C for a {report.kind} drive). Check the fans and airflow.",
                   disk.devnode)


def _sensor(sensor: Temperature) -> Finding | None:
    level = None
    if sensor.critical and sensor.current >= sensor.critical:
        level = CRITICAL
    elif sensor.high and sensor.current >= sensor.high:
        level = WARNING
    if level is None:
        return None
    return Finding(f"sensor:{sensor.chip}:{sensor.label}", level,
                   f"{sensor.chip} {sensor.label} is hot: {sensor.current:.0f} °C",
                   f"Sensor {sensor.chip}/{sensor.label} reads {sensor.current:.1f} °C "
                   f"(high {sensor.high}, critical {sensor.critical} as the chip reports).")
