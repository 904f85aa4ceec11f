"""Hardware rules: pure functions from one `Snapshot` (and the history they need) to
`Finding`s. One small module per check, as TrueNAS's alert sources: disk_health,
temperature, selftest, raid, space, trend. Nothing here reads a device or a file."""

from __future__ import annotations

from collections.abc import Mapping

from appliance.hardware.rules import disk_health, raid, selftest, space, temperature, trend
from appliance.hardware.rules.base import Finding, Snapshot, Thresholds

CHECKS = (disk_health.check, temperature.check, selftest.check, raid.check, space.check)


def evaluate(snapshot: Snapshot, limits: Thresholds,
             baseline: Mapping[str, float] | None = None) -> tuple[Finding, ...]:
    """Every finding of every check, one per key (the first check to name a key wins)."""
    found: dict[str, Finding] = {}
    for check in CHECKS:
        for finding in check(snapshot, limits):
            found.setdefault(finding.key, finding)
    for finding in trend.check(snapshot, limits, baseline or {}):
        found.setdefault(finding.key, finding)
    return tuple(found.values())
