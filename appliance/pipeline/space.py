"""The free-space floor (`limits.min_free_space`): refuse new mail with 452 before the disk fills.

Checked at MAIL FROM (with the SIZE the client announced) and again before a message is
stored, so a full disk tempfails the client instead of losing mail (RFC 3463 4.3.1). The
file system is asked at most every `MEASURE_INTERVAL` seconds, not twice per message.

The hardware monitor (appliance/hardware/) adds its own critical state (the mail file system
`monitor.space_critical_percent` full): it keeps the file `monitor/space-critical` in the
data directory with its mtime set to when the state expires, refreshed every poll. One
stat() tells the engine; a monitor that died leaves a flag that expires by itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from appliance.core import log
from appliance.core.errors import MailError
from appliance.core.sizes import SpaceAmount
from appliance.smtp import replies

# A reading of the free space is reused this long (seconds). Even 1,000 messages/s of 100 KB
# write only 10 MB meanwhile, far below any sensible floor (the default is 256 MiB).
MEASURE_INTERVAL = 0.1
MONITOR_FLAG = Path("monitor") / "space-critical"     # relative to the data directory


def monitor_says_full(data_dir: Path, now: float) -> bool:
    """True while the monitor's critical-space flag exists and has not expired."""
    try:
        return os.stat(data_dir / MONITOR_FLAG).st_mtime > now
    except OSError:
        return False


def free_and_total(path: Path) -> tuple[int, int]:
    """Bytes available to this (unprivileged) process, and the file system's size."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


class SpaceGuard:
    """Answers "is there room for `size` more bytes above the floor?" for one data directory."""

    def __init__(self, path: Path, floor: SpaceAmount,
                 measure: Callable[[Path], tuple[int, int]] = free_and_total,
                 interval: float = MEASURE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._floor = floor
        self._measure = measure
        self._interval = interval
        self._clock = clock
        self._reading: tuple[float, int, int] | None = None    # (when, free, total)
        self._flag: tuple[float, bool] | None = None           # (when, monitor says full)

    def has_room(self, size: int = 0) -> bool:
        if self._monitor_critical():
            return False
        if self._floor.percent is None and self._floor.bytes == 0:
            return True
        try:
            free, total = self._free_and_total()
        except OSError as exc:
            log.error("space.check_failed", exc, path=str(self._path))
            return True     # cannot tell: let the write itself fail if the disk is full
        return free - size >= self._floor.of(total)

    def _free_and_total(self) -> tuple[int, int]:
        now = self._clock()
        if self._reading is None or not 0 <= now - self._reading[0] < self._interval:
            self._reading = (now, *self._measure(self._path))
        return self._reading[1], self._reading[2]

    def _monitor_critical(self) -> bool:
        now = self._clock()
        if self._flag is None or not 0 <= now - self._flag[0] < self._interval:
            self._flag = (now, monitor_says_full(self._path, time.time()))
        return self._flag[1]

    def check(self, size: int = 0) -> None:
        """Raise a MailError carrying `452 4.3.1` if `size` bytes would go below the floor."""
        if not self.has_room(size):
            log.event("space.below_floor", path=str(self._path), size=size)
            raise MailError(replies.INSUFFICIENT_STORAGE,
                            f"free space below limits.min_free_space with {size} more bytes "
                            "or monitor.space_critical_percent reached")
