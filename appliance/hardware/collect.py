"""One poll's readings: every reader run once, the results put together as a `Snapshot`.

Disks are the union of what udev lists and what `smartctl --scan-open` can open (behind a
RAID controller or a USB bridge only smartctl sees them); each gets one `smartctl -a`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.core import log
from appliance.core.run import which
from appliance.hardware.readers import blockdev, mdadm, mdstat, smart, system
from appliance.hardware.rules.base import Disk, Snapshot


@dataclass
class Collector:
    """Reads the machine. `mdstat_path` may name a saved copy (tests, diagnosis)."""

    data_dir: Path
    mdstat_path: Path = mdstat.MDSTAT
    use_smart: bool = True
    _io: tuple[float, dict[str, system.IoCounters]] | None = field(default=None, init=False)

    def collect(self) -> Snapshot:
        now = time.time()
        md = mdstat.read_mdstat(self.mdstat_path)
        return Snapshot(taken_at=now, disks=self._disks(), mdstat=md,
                        md_details=self._details(md), space=self._space(),
                        temperatures=system.read_temperatures(), fans=system.read_fans(),
                        io=self._io_rates(now))

    def _disks(self) -> tuple[Disk, ...]:
        try:
            blocks = {b.devnode: b for b in blockdev.enumerate_disks()}
        except Exception as exc:      # no udev or sysfs must not stop the poll
            log.error("monitor.udev_failed", exc)
            blocks = {}
        scanned = smart.scan() if self.use_smart and which("smartctl") else ()
        types = {d.name: d.device_type for d in scanned}
        names = sorted(set(blocks) | set(types))
        disks = []
        for node in names:
            report = None
            if self.use_smart and which("smartctl"):
                report, _ = smart.read_smart(node, types.get(node, ""))
            block = blocks.get(node)
            disks.append(Disk(block.name if block else node.rsplit("/", 1)[-1], block, report))
        return tuple(disks)

    def _details(self, md: mdstat.MdStat | None) -> dict[str, mdadm.MdadmDetail]:
        if md is None or not md.arrays or not which("mdadm") \
                or self.mdstat_path != mdstat.MDSTAT:
            return {}      # a saved mdstat names arrays this machine does not have
        found = {}
        for array in md.arrays:
            detail, _ = mdadm.read_detail(array.name)
            if detail is not None:
                found[array.name] = detail
        return found

    def _space(self) -> system.SpaceReading | None:
        try:
            return system.read_space(self.data_dir)
        except OSError as exc:
            log.error("monitor.space_failed", exc, path=str(self.data_dir))
            return None

    def _io_rates(self, now: float) -> tuple[system.IoRate, ...]:
        counters = system.read_io_counters()
        before, self._io = self._io, (now, counters)
        return () if before is None else system.io_rates(before[1], counters, now - before[0])
