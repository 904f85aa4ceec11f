"""One md array's identity and member roles through `mdadm --detail --export` (mdadm 4.x):
`KEY=value` lines, MD_DEVICE_<dev>_ROLE / _DEV per member.

mdadm's export has no state line (no "degraded" or "faulty"); /proc/mdstat is where health
is read (`readers/mdstat.py`). This adds the UUID, name, metadata version and which device
holds which slot, for the alert text and the disk-failed hook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.core.run import ToolResult, run_tool

MDADM_TIMEOUT = 30.0
_MEMBER_KEY = re.compile(r"^MD_DEVICE_(?P<key>.+)_(?P<field>ROLE|DEV)$")


@dataclass(frozen=True)
class MdadmMember:
    device: str            # /dev/sdb2
    role: str              # slot number as text, or "spare" / "faulty" / "journal"


@dataclass(frozen=True)
class MdadmDetail:
    level: str
    raid_devices: int | None
    metadata: str
    uuid: str
    devname: str
    name: str
    members: tuple[MdadmMember, ...]
    other: tuple[tuple[str, str], ...]      # keys this reader does not interpret


def parse_detail_export(text: str) -> MdadmDetail:
    """Parse `mdadm --detail --export <md>`. Never raises; unknown keys go to `other`."""
    values: dict[str, str] = {}
    members: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key.startswith("MD_"):
            continue
        member = _MEMBER_KEY.match(key)
        if member:
            members.setdefault(member["key"], {})[member["field"]] = value
        else:
            values[key] = value
    devices = _int(values.pop("MD_DEVICES", ""))
    return MdadmDetail(
        level=values.pop("MD_LEVEL", ""), raid_devices=devices,
        metadata=values.pop("MD_METADATA", ""), uuid=values.pop("MD_UUID", ""),
        devname=values.pop("MD_DEVNAME", ""), name=values.pop("MD_NAME", ""),
        members=tuple(sorted((MdadmMember(m.get("DEV", ""), m.get("ROLE", ""))
                              for m in members.values()), key=lambda m: m.device)),
        other=tuple(sorted(values.items())))


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def read_detail(array: str, timeout: float = MDADM_TIMEOUT) -> tuple[MdadmDetail | None,
                                                                     ToolResult]:
    """Run mdadm on `array` ("md0" or "/dev/md0"); None when it printed nothing."""
    device = array if array.startswith("/") else f"/dev/{array}"
    result = run_tool(["mdadm", "--detail", "--export", device], timeout)
    text = result.stdout.decode("utf-8", "replace")
    return (parse_detail_export(text) if "MD_LEVEL=" in text else None), result
