"""Disk health per disk: ok, warning or failing, from the SMART facts that field studies
found to predict failure.

- Backblaze (https://www.backblaze.com/blog/hard-drive-smart-stats/, 2016): of ~70 SMART
  attributes, the raw counts of 5 (reallocated sectors), 187 (reported uncorrectable), 188
  (command timeout), 197 (current pending) and 198 (offline uncorrectable) are the ones
  whose nonzero values go with failing drives; a drive can fail with all of them at 0,
  so 0 is "no evidence", not a guarantee.
- The drive's own verdict: SMART overall status FAILED, or a pre-failure attribute at or
  below its vendor threshold (smartctl exit-status bits 3 and 4).
- NVMe (NVM Express 1.4, figure 194): any critical-warning bit, available spare below its
  threshold, `percentage used` near or past the rated endurance, media errors.
- SAS: the grown defect list (sectors remapped since manufacture), like ATA 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.hardware.readers.smart import SmartReport
from appliance.hardware.rules.base import CRITICAL, WARNING, Disk, Finding, Snapshot, Thresholds

BAD_SECTOR_ATTRIBUTES = (5, 197, 198)     # reallocated, pending, offline uncorrectable


@dataclass(frozen=True)
class Health:
    state: str                      # "ok", "warning", "failing" or "unknown"
    reasons: tuple[str, ...]


def bad_sectors(report: SmartReport) -> int | None:
    """Reallocated + pending + uncorrectable sectors (ATA), grown defects (SAS), media
    errors (NVMe); None when the disk reports none of them."""
    if report.nvme is not None:
        return report.nvme.media_errors
    if report.scsi_grown_defects is not None:
        return report.scsi_grown_defects
    counts = [report.raw(a) for a in BAD_SECTOR_ATTRIBUTES]
    present = [c for c in counts if c is not None]
    return sum(present) if present else None


def health_of(report: SmartReport | None, limits: Thresholds) -> Health:
    if report is None or (report.smart_passed is None and not report.attributes
                          and report.nvme is None and report.scsi_grown_defects is None):
        return Health("unknown", ("no SMART data",))
    failing = _failing(report, limits)
    warning = _warnings(report, limits)
    if failing:
        return Health("failing", tuple(failing + warning))
    return Health("warning", tuple(warning)) if warning else Health("ok", ())


def _failing(report: SmartReport, limits: Thresholds) -> list[str]:
    reasons = []
    if report.smart_passed is False or "disk_failing" in report.exit_flags:
        reasons.append("the drive's SMART overall health self-assessment says FAILED")
    for attribute in report.attributes:
        if attribute.prefailure and attribute.when_failed == "now":
            reasons.append(f"SMART attribute {attribute.id} {attribute.name} is at or below "
                           f"its threshold ({attribute.value} <= {attribute.thresh})")
    count = bad_sectors(report)
    if report.nvme is None and count is not None and count >= limits.bad_sectors_failing:
        reasons.append(f"{count} bad sectors (reallocated, pending or uncorrectable), "
                       f"at least monitor.bad_sectors_failing = {limits.bad_sectors_failing}")
    if report.nvme is not None:
        reasons += _nvme_failing(report)
    return reasons


def _nvme_failing(report: SmartReport) -> list[str]:
    nvme = report.nvme
    assert nvme is not None
    reasons = []
    if nvme.critical_warning:
        reasons.append(f"NVMe critical warning {nvme.critical_warning:#04x}: "
                       + ", ".join(w.replace("_", " ") for w in nvme.warnings))
    spare, floor = nvme.available_spare, nvme.available_spare_threshold
    if spare is not None and floor is not None and spare < floor:
        reasons.append(f"available spare {spare} % is below the drive's threshold {floor} %")
    return reasons


def _warnings(report: SmartReport, limits: Thresholds) -> list[str]:
    reasons = []
    for ident, what in ((5, "reallocated sectors"), (187, "reported uncorrectable errors"),
                        (188, "command timeouts"), (197, "pending sectors"),
                        (198, "offline uncorrectable sectors")):
        raw = report.raw(ident)
        if raw:
            reasons.append(f"{raw} {what} (SMART {ident})")
    if report.scsi_grown_defects:
        reasons.append(f"{report.scsi_grown_defects} grown defects (remapped sectors)")
    nvme = report.nvme
    if nvme is not None and nvme.percentage_used is not None \
            and nvme.percentage_used >= limits.nvme_wear_warning:
        reasons.append(f"{nvme.percentage_used} % of the rated endurance used")
    if nvme is not None and nvme.media_errors:
        reasons.append(f"{nvme.media_errors} media and data integrity errors")
    return reasons


def check(snapshot: Snapshot, limits: Thresholds) -> list[Finding]:
    return [f for f in (_finding(d, limits) for d in snapshot.disks) if f is not None]


def _finding(disk: Disk, limits: Thresholds) -> Finding | None:
    health = health_of(disk.smart, limits)
    if health.state not in ("warning", "failing"):
        return None
    level = CRITICAL if health.state == "failing" else WARNING
    title = (f"Disk {disk.devnode} is failing" if level == CRITICAL
             else f"Disk {disk.devnode} shows signs of wear")
    text = (f"{disk.label}:\n" + "\n".join(f"- {r}" for r in health.reasons)
            + ("\nReplace it soon; make sure the mail is on a healthy RAID member or backed "
               "up." if level == CRITICAL else "\nWatch it; plan a replacement."))
    return Finding(f"disk_health:{disk.ident}", level, title, text, disk.devnode)
