"""Rising trends: a disk that has more bad sectors (or NVMe media errors) now than a day
ago is failing progressively, even while every count is below its threshold. The
baseline comes from the stored history (alerts.History.baseline)."""

from __future__ import annotations

from collections.abc import Mapping

from appliance.hardware.rules.base import WARNING, Finding, Snapshot, Thresholds
from appliance.hardware.rules.disk_health import bad_sectors


def check(snapshot: Snapshot, limits: Thresholds,
          baseline: Mapping[str, float]) -> list[Finding]:
    """`baseline`: bad-sector counts by disk ident from about 24 hours ago."""
    found = []
    for disk in snapshot.disks:
        now = bad_sectors(disk.smart) if disk.smart is not None else None
        before = baseline.get(disk.ident)
        if now is None or before is None or now <= before:
            continue
        found.append(Finding(f"trend:{disk.ident}", WARNING,
                             f"Disk {disk.devnode}: {now - before:.0f} new bad sectors "
                             "since yesterday",
                             f"{disk.label} reported {before:.0f} bad sectors a day ago and "
                             f"{now} now. A growing count means the surface is degrading: "
                             "plan to replace the disk.", disk.devnode))
    return found
