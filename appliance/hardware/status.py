"""The state `mailstead health` shows: per disk its health and temperature, per array its
state, the mail file system's use, sensors, and the active alerts; as a JSON-ready dict
and as text. Pure: it formats what the readers and rules found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from appliance.hardware.alerts import StoredAlert
from appliance.hardware.rules import raid
from appliance.hardware.rules.base import Finding, Snapshot, Thresholds, worst
from appliance.hardware.rules.disk_health import bad_sectors, health_of


def overall(findings: Sequence[Finding]) -> str:
    return worst([f.level for f in findings])


def state(snapshot: Snapshot, limits: Thresholds, findings: Sequence[Finding],
          alerts: Sequence[StoredAlert] = ()) -> dict[str, Any]:
    return {
        "taken_at": int(snapshot.taken_at),
        "overall": overall(findings),
        "disks": [_disk(d, limits) for d in snapshot.disks],
        "arrays": None if snapshot.mdstat is None else [
            {"name": a.name, "level": a.level, "state": raid.array_state(a),
             "status": a.status, "members": [m.name for m in a.members],
             "faulty": list(a.faulty_members), "spares": list(a.spares),
             "sync": None if a.sync is None else asdict(a.sync),
             "bitmap": a.bitmap is not None,
             "uuid": snapshot.md_details[a.name].uuid if a.name in snapshot.md_details
             else ""} for a in snapshot.mdstat.arrays],
        "space": None if snapshot.space is None else {
            "path": snapshot.space.path, "total": snapshot.space.total,
            "free": snapshot.space.free, "percent": round(snapshot.space.percent, 1),
            "inodes_percent": round(snapshot.space.inodes_percent, 1)},
        "sensors": [asdict(t) for t in snapshot.temperatures],
        "fans": [asdict(f) for f in snapshot.fans],
        "io": [asdict(r) for r in snapshot.io],
        "findings": [asdict(f) for f in findings],
        "alerts": [asdict(a) for a in alerts],
    }


def _disk(disk: Any, limits: Thresholds) -> dict[str, Any]:
    report = disk.smart
    health = health_of(report, limits)
    return {"name": disk.name, "devnode": disk.devnode, "serial": disk.ident,
            "model": (report.model if report else "") or (disk.block.model if disk.block
                                                          else ""),
            "bus": disk.block.bus if disk.block else "",
            "kind": report.kind if report else "", "health": health.state,
            "reasons": list(health.reasons),
            "temperature": report.temperature if report else None,
            "power_on_hours": report.power_on_hours if report else None,
            "bad_sectors": bad_sectors(report) if report else None,
            "smartctl_exit_flags": list(report.exit_flags) if report else []}


def text(view: dict[str, Any]) -> str:
    lines = [f"overall: {view['overall']}", "", "disks:"]
    for d in view["disks"] or []:
        temp = f"{d['temperature']} °C" if d["temperature"] is not None else "-"
        lines.append(f"  {d['devnode']:<14} {d['health']:<8} {temp:>6}  {d['model']} "
                     f"{d['serial']} ({d['bus'] or d['kind'] or '?'})")
        lines += [f"      {r}" for r in d["reasons"] if d["health"] != "unknown"]
    if not view["disks"]:
        lines.append("  none found")
    lines += ["", "RAID:" if view["arrays"] is not None else "RAID: no md driver "
              "(/proc/mdstat missing)"]
    for a in view["arrays"] or []:
        lines.append(f"  /dev/{a['name']:<10} {a['level']:<7} {a['state']:<11} "
                     f"[{a['status']}] members {' '.join(a['members'])}"
                     + (f" faulty {' '.join(a['faulty'])}" if a["faulty"] else ""))
    space = view["space"]
    if space is not None:
        lines += ["", f"mail storage: {space['percent']} % used, {space['free'] // 2**20} "
                      f"MiB free, inodes {space['inodes_percent']} % ({space['path']})"]
    lines += ["", "sensors: " + (", ".join(f"{s['chip']}/{s['label']} {s['current']:.0f} °C"
                                           for s in view["sensors"]) or "none (no hwmon)")]
    lines += ["", "problems:" if view["findings"] else "problems: none"]
    lines += [f"  {f['level'].upper()}: {f['title']}" for f in view["findings"]]
    return "\n".join(lines)
