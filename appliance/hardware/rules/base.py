"""What every rule shares: the reading they judge (`Snapshot`), the thresholds from the
`monitor.*` settings, and the result (`Finding`: a dedup key, a level, a title and a text,
as TrueNAS's alert classes have)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from appliance.core.addresses import parse_address
from appliance.hardware.readers.blockdev import BlockDevice
from appliance.hardware.readers.mdadm import MdadmDetail
from appliance.hardware.readers.mdstat import MdStat
from appliance.hardware.readers.smart import SmartReport
from appliance.hardware.readers.system import Fan, IoRate, SpaceReading, Temperature
from appliance.settings import Settings

WARNING = "warning"
CRITICAL = "critical"
LEVELS = {"ok": 0, WARNING: 1, CRITICAL: 2}


def parse_admin_address(text: str) -> str:
    """`monitor.admin_address`: "" or one valid address (raises ValueError otherwise)."""
    return str(parse_address(text.strip())) if text.strip() else ""


@dataclass(frozen=True)
class Finding:
    """One problem found now. `key` names the thing (not the level), so a disk that goes
    from warning to critical is one alert that changed, and a cleared one can be told."""

    key: str
    level: str          # WARNING or CRITICAL
    title: str
    text: str
    device: str = ""    # the /dev node concerned, if any (for the disk-failed hook)


@dataclass(frozen=True)
class Disk:
    """One disk as the readers saw it: udev's facts and smartctl's (either may be missing)."""

    name: str
    block: BlockDevice | None = None
    smart: SmartReport | None = None

    @property
    def ident(self) -> str:
        """A stable name for keys: the serial number when known (a disk keeps its alerts
        when it moves to another port), else the kernel name."""
        serial = (self.smart.serial if self.smart else "") or (
            self.block.serial if self.block else "")
        return serial or self.name

    @property
    def label(self) -> str:
        model = (self.smart.model if self.smart else "") or (
            self.block.model if self.block else "")
        return f"{self.devnode} ({model}, serial {self.ident})" if model else self.devnode

    @property
    def devnode(self) -> str:
        if self.block is not None:
            return self.block.devnode
        return self.smart.device if self.smart and self.smart.device else f"/dev/{self.name}"


@dataclass(frozen=True)
class Snapshot:
    """Everything one poll read."""

    taken_at: float
    disks: tuple[Disk, ...] = ()
    mdstat: MdStat | None = None
    md_details: Mapping[str, MdadmDetail] = field(default_factory=dict)
    space: SpaceReading | None = None
    temperatures: tuple[Temperature, ...] = ()
    fans: tuple[Fan, ...] = ()
    io: tuple[IoRate, ...] = ()


@dataclass(frozen=True)
class Thresholds:
    space_warning: int = 85
    space_critical: int = 95
    temperature: Mapping[str, tuple[int, int]] = field(default_factory=lambda: {
        "hdd": (50, 60), "ssd": (60, 70), "nvme": (70, 80), "unknown": (50, 60)})
    bad_sectors_failing: int = 100
    nvme_wear_warning: int = 90

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        def pair(kind: str) -> tuple[int, int]:
            return (settings.get_int(f"monitor.{kind}_temperature_warning"),
                    settings.get_int(f"monitor.{kind}_temperature_critical"))

        return cls(space_warning=settings.get_int("monitor.space_warning_percent"),
                   space_critical=settings.get_int("monitor.space_critical_percent"),
                   temperature={"hdd": pair("hdd"), "ssd": pair("ssd"),
                                "nvme": pair("nvme"), "unknown": pair("hdd")},
                   bad_sectors_failing=settings.get_int("monitor.bad_sectors_failing"),
                   nvme_wear_warning=settings.get_int("monitor.nvme_wear_warning"))


def worst(levels: list[str]) -> str:
    return max(levels, key=lambda level: LEVELS[level], default="ok")
