"""md RAID: an array that is degraded (a member missing), rebuilding (recovery running),
failed (more members missing than its level survives) or inactive, and faulty members
still listed. Health comes from /proc/mdstat; `mdadm --detail --export` adds names."""

from __future__ import annotations

from appliance.hardware.readers.mdstat import MdArray
from appliance.hardware.rules.base import CRITICAL, WARNING, Finding, Snapshot, Thresholds

# Members an array can lose and still hold all data (raid10 near-2: at least 1).
REDUNDANCY = {"raid1": None, "raid4": 1, "raid5": 1, "raid6": 2, "raid10": 1,
              "raid0": 0, "linear": 0}


def check(snapshot: Snapshot, limits: Thresholds) -> list[Finding]:
    if snapshot.mdstat is None:
        return []
    found: list[Finding] = []
    for array in snapshot.mdstat.arrays:
        state = array_state(array)
        if state in ("degraded", "rebuilding", "failed", "inactive"):
            found.append(_array_finding(array, state))
        found += [_member_finding(array, m) for m in array.faulty_members]
    return found


def array_state(array: MdArray) -> str:
    """"clean", "resyncing", "degraded", "rebuilding", "failed", "inactive" or
    "container" (an inactive IMSM/DDF container, which holds no data itself)."""
    if not array.active:
        return "container" if not array.level else "inactive"
    if array.degraded:
        if _lost(array):
            return "failed"
        sync = array.sync
        rebuilding = sync is not None and sync.action in ("recovery", "reshape") \
            and not sync.waiting
        return "rebuilding" if rebuilding else "degraded"
    return "resyncing" if array.sync is not None and not array.sync.waiting else "clean"


def _lost(array: MdArray) -> bool:
    tolerance = REDUNDANCY.get(array.level, 0)
    if tolerance is None:                     # a mirror lives while one member works
        return array.working_disks == 0
    return array.missing > tolerance


def _array_finding(array: MdArray, state: str) -> Finding:
    level = WARNING if state == "rebuilding" else CRITICAL
    where = f"/dev/{array.name} ({array.level or 'md'}, [{array.status}])"
    texts = {
        "degraded": f"{where} runs with {array.missing} member(s) missing and nothing is "
                    "rebuilding: one more disk failure may lose mail. Replace the disk and "
                    "add it with `mdadm --add`.",
        "rebuilding": f"{where} is rebuilding onto a new member{_progress(array)}. It is "
                      "not redundant until that ends.",
        "failed": f"{where} has lost more members than {array.level} survives: the data "
                  "on it is not readable. Do not write to it; get help recovering it.",
        "inactive": f"/dev/{array.name} is inactive (not assembled): its data is not "
                    "available.",
    }
    return Finding(f"raid:{array.name}", level,
                   f"RAID /dev/{array.name} is {state}", texts[state], f"/dev/{array.name}")


def _progress(array: MdArray) -> str:
    sync = array.sync
    if sync is None or sync.percent is None:
        return ""
    eta = f", about {sync.finish_minutes:.0f} minutes left" if sync.finish_minutes else ""
    speed = f" at {sync.speed_kib // 1024} MiB/s" if sync.speed_kib else ""
    return f" ({sync.percent:.1f} % done{speed}{eta})"


def _member_finding(array: MdArray, member: str) -> Finding:
    return Finding(f"raid_member:{array.name}:{member}", WARNING,
                   f"/dev/{member} failed in RAID /dev/{array.name}",
                   f"The kernel marked /dev/{member} faulty in /dev/{array.name}. Remove it "
                   f"(`mdadm /dev/{array.name} --remove /dev/{member}`) and replace the disk.",
                   f"/dev/{member}")
