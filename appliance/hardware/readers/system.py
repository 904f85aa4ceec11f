"""Host facts through psutil and statvfs: space and inodes of the mail data's file system,
per-disk I/O rates and latency (from two counter readings), temperatures and fans."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no type information installed


@dataclass(frozen=True)
class SpaceReading:
    path: str
    total: int
    used: int
    free: int                 # available to unprivileged users (f_bavail)
    inodes_total: int
    inodes_free: int

    @property
    def percent(self) -> float:
        """Used share as `df` shows it: used / (used + available), reserved blocks aside."""
        usable = self.used + self.free
        return 100.0 * self.used / usable if usable else 0.0

    @property
    def inodes_percent(self) -> float:
        if not self.inodes_total:
            return 0.0      # file systems without a fixed inode table (btrfs) report 0
        return 100.0 * (self.inodes_total - self.inodes_free) / self.inodes_total


def space_of(path: str, total: int, used: int, free: int, files: int,
             files_free: int) -> SpaceReading:
    return SpaceReading(path, total, used, free, files, files_free)


def read_space(path: Path) -> SpaceReading:
    """Raises OSError when `path` cannot be examined."""
    usage = psutil.disk_usage(str(path))
    stat = os.statvfs(path)
    return space_of(str(path), usage.total, usage.used, usage.free, stat.f_files,
                    stat.f_favail)


@dataclass(frozen=True)
class IoCounters:
    reads: int
    writes: int
    read_bytes: int
    write_bytes: int
    read_ms: int
    write_ms: int


@dataclass(frozen=True)
class IoRate:
    disk: str
    read_bytes_per_s: float
    write_bytes_per_s: float
    reads_per_s: float
    writes_per_s: float
    latency_ms: float | None    # average time per completed request; None without requests


def read_io_counters() -> dict[str, IoCounters]:
    counters = psutil.disk_io_counters(perdisk=True) or {}
    return {name: IoCounters(c.read_count, c.write_count, c.read_bytes, c.write_bytes,
                             c.read_time, c.write_time) for name, c in counters.items()}


def io_rates(before: Mapping[str, IoCounters], after: Mapping[str, IoCounters],
             seconds: float) -> tuple[IoRate, ...]:
    """Rates between two readings `seconds` apart (disks in both; counters that went
    backwards, after a driver reload, give no rate)."""
    if seconds <= 0:
        return ()
    rates = []
    for disk in sorted(set(before) & set(after)):
        a, b = before[disk], after[disk]
        deltas = (b.reads - a.reads, b.writes - a.writes, b.read_bytes - a.read_bytes,
                  b.write_bytes - a.write_bytes, b.read_ms - a.read_ms, b.write_ms - a.write_ms)
        if min(deltas) < 0:
            continue
        reads, writes, rbytes, wbytes, rms, wms = deltas
        requests = reads + writes
        rates.append(IoRate(disk, rbytes / seconds, wbytes / seconds, reads / seconds,
                            writes / seconds, (rms + wms) / requests if requests else None))
    return tuple(rates)


@dataclass(frozen=True)
class Temperature:
    chip: str
    label: str
    current: float
    high: float | None
    critical: float | None


@dataclass(frozen=True)
class Fan:
    chip: str
    label: str
    rpm: int


def read_temperatures() -> tuple[Temperature, ...]:
    """hwmon temperatures (empty where the kernel has no hwmon, e.g. most VMs)."""
    found = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
    return tuple(Temperature(chip, s.label or chip, s.current, s.high, s.critical)
                 for chip, sensors in sorted(found.items()) for s in sensors)


def read_fans() -> tuple[Fan, ...]:
    found = psutil.sensors_fans() if hasattr(psutil, "sensors_fans") else {}
    return tuple(Fan(chip, s.label or chip, s.current)
                 for chip, sensors in sorted(found.items()) for s in sensors)
