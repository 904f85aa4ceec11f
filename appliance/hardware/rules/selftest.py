"""SMART self-tests: the newest completed entry of a disk's self-test log failed (a read
failure in a short or extended test means unreadable sectors now)."""

from __future__ import annotations

from appliance.hardware.rules.base import CRITICAL, Disk, Finding, Snapshot, Thresholds


def check(snapshot: Snapshot, limits: Thresholds) -> list[Finding]:
    return [f for f in (_finding(d) for d in snapshot.disks) if f is not None]


def _finding(disk: Disk) -> Finding | None:
    if disk.smart is None:
        return None
    finished = [t for t in disk.smart.self_tests if t.passed is not None]
    if not finished or finished[0].passed:
        return None
    newest = finished[0]
    hours = f" at {newest.lifetime_hours} power-on hours" if newest.lifetime_hours else ""
    return Finding(f"selftest:{disk.ident}", CRITICAL,
                   f"Disk {disk.devnode} failed its SMART self-test",
                   f"{disk.label}: the latest self-test ({newest.kind}){hours} ended with "
                   f"\"{newest.status}\". The disk has sectors it cannot read.",
                   disk.devnode)
