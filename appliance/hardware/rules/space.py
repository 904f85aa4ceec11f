"""Space and inodes of the file system that holds the mail data: a warning from
`monitor.space_warning_percent`, critical (and the engine refuses new mail with
`452 4.3.1`) from `monitor.space_critical_percent`."""

from __future__ import annotations

from appliance.hardware.readers.system import SpaceReading
from appliance.hardware.rules.base import CRITICAL, WARNING, Finding, Snapshot, Thresholds


def level_of(percent: float, limits: Thresholds) -> str | None:
    if percent >= limits.space_critical:
        return CRITICAL
    return WARNING if percent >= limits.space_warning else None


def is_critical(space: SpaceReading | None, limits: Thresholds) -> bool:
    """The state the engine's SMTP listeners act on (pipeline/space.py)."""
    if space is None:
        return False
    return CRITICAL in (level_of(space.percent, limits), level_of(space.inodes_percent, limits))


def check(snapshot: Snapshot, limits: Thresholds) -> list[Finding]:
    space = snapshot.space
    if space is None:
        return []
    found = []
    for what, percent in (("space", space.percent), ("inodes", space.inodes_percent)):
        level = level_of(percent, limits)
        if level is None:
            continue
        refusing = (" New mail is refused with 452 4.3.1 until space is freed."
                    if level == CRITICAL else "")
        found.append(Finding(f"{what}:{space.path}", level,
                             f"Mail storage {what} {percent:.0f} % used",
                             f"The file system of {space.path} has {percent:.1f} % of its "
                             f"{'blocks' if what == 'space' else 'inodes'} in use "
                             f"({space.free // 2**20} MiB free).{refusing}"))
    return found
