"""SMART data through `smartctl --json=c -a` (smartmontools 7.x): ATA attributes, the NVMe
health log, SAS grown defects, the self-test logs and smartctl's exit-status bits.

Only facts are read here; which values mean a failing disk is decided in
`appliance.hardware.rules.disk_health`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.core.run import ToolResult, run_tool
from appliance.hardware.readers._json import as_bool, as_int, as_list, as_str, dig

SMARTCTL_TIMEOUT = 60.0      # seconds; a disk in trouble can take long to answer

# smartctl(8) "RETURN VALUES": bit i of the exit status, in order.
EXIT_BITS = (
    "command_line_error",       # 0: command line did not parse
    "device_open_failed",       # 1: open failed, no IDENTIFY data, or low-power mode
    "smart_command_failed",     # 2: a SMART or ATA command failed, or a checksum error
    "disk_failing",             # 3: SMART status check returned "DISK FAILING"
    "prefail_below_threshold",  # 4: prefail attributes <= threshold now
    "past_threshold",           # 5: OK now, but attributes were <= threshold in the past
    "error_log_has_errors",     # 6: the device error log contains records of errors
    "self_test_log_has_errors", # 7: the self-test log contains records of errors
)

# NVMe 1.4 figure 194, SMART / Health Information, byte 0 "Critical Warning", bit i.
NVME_WARNING_BITS = (
    "available_spare_low",      # 0: available spare below the threshold
    "temperature",              # 1: temperature above or below a threshold
    "reliability_degraded",     # 2: media or internal errors degrade reliability
    "read_only",                # 3: the media has been placed in read-only mode
    "volatile_backup_failed",   # 4: the volatile memory backup device has failed
    "pmr_read_only",            # 5: the persistent memory region became read-only
)


class SmartParseError(ValueError):
    """The input is not smartctl JSON (not JSON, or not an object)."""


@dataclass(frozen=True)
class AtaAttribute:
    """One row of the ATA SMART attribute table."""

    id: int
    name: str
    value: int | None        # normalised current value (higher is better)
    worst: int | None
    thresh: int | None
    raw: int | None          # the raw counter (packed for some vendors' temperatures)
    raw_string: str
    when_failed: str         # "", "now" or "past"
    prefailure: bool


@dataclass(frozen=True)
class NvmeHealth:
    """The NVMe SMART / Health Information log page (02h)."""

    critical_warning: int
    warnings: tuple[str, ...]          # names of the set critical-warning bits
    temperature: int | None
    available_spare: int | None
    available_spare_threshold: int | None
    percentage_used: int | None
    media_errors: int | None
    error_log_entries: int | None
    unsafe_shutdowns: int | None
    power_on_hours: int | None


@dataclass(frozen=True)
class SelfTest:
    """One entry of a self-test log, newest first as smartctl lists them."""

    kind: str                 # "Short offline", "Extended offline", "Short", ...
    status: str
    passed: bool | None       # None: aborted, interrupted or still running
    lifetime_hours: int | None


@dataclass(frozen=True)
class SmartReport:
    """What smartctl said about one device."""

    device: str
    device_type: str          # smartctl's -d type: "sat", "nvme", "scsi", ...
    protocol: str             # "ATA", "NVMe", "SCSI" or ""
    model: str
    serial: str
    firmware: str
    capacity_bytes: int | None
    rotation_rate: int | None # rpm; 0 for solid state; None when not reported
    smartctl_version: str
    exit_status: int | None
    exit_flags: tuple[str, ...]
    messages: tuple[str, ...]
    smart_passed: bool | None
    temperature: int | None
    drive_trip_temperature: int | None   # SCSI: the drive's own trip point
    power_on_hours: int | None
    attributes: tuple[AtaAttribute, ...]
    nvme: NvmeHealth | None
    scsi_grown_defects: int | None
    self_tests: tuple[SelfTest, ...]
    self_test_running: bool

    @property
    def kind(self) -> str:
        """"nvme", "ssd", "hdd" or "unknown": which temperature limits apply."""
        if self.protocol == "NVMe" or self.nvme is not None:
            return "nvme"
        if self.rotation_rate == 0:
            return "ssd"
        if self.rotation_rate is not None and self.rotation_rate > 0:
            return "hdd"
        return "unknown"

    def attribute(self, attribute_id: int) -> AtaAttribute | None:
        return next((a for a in self.attributes if a.id == attribute_id), None)

    def raw(self, attribute_id: int) -> int | None:
        found = self.attribute(attribute_id)
        return None if found is None else found.raw


def decode_exit_status(status: int) -> tuple[str, ...]:
    """The names of the set bits of smartctl's exit status (smartctl(8))."""
    return tuple(name for bit, name in enumerate(EXIT_BITS) if status >> bit & 1)


def decode_nvme_warning(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(NVME_WARNING_BITS) if value >> bit & 1)


def parse_smartctl(data: bytes | str) -> SmartReport:
    """Parse `smartctl --json -a` output (any 7.x version, ATA, NVMe or SCSI).

    Raises:
        SmartParseError: not JSON, or not a JSON object.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SmartParseError(f"smartctl output is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SmartParseError("smartctl output is not a JSON object")
    status = as_int(doc, "smartctl", "exit_status")
    return SmartReport(
        device=as_str(doc, "device", "name"), device_type=as_str(doc, "device", "type"),
        protocol=as_str(doc, "device", "protocol"), model=_model(doc),
        serial=as_str(doc, "serial_number"), firmware=as_str(doc, "firmware_version"),
        capacity_bytes=as_int(doc, "user_capacity", "bytes"),
        rotation_rate=as_int(doc, "rotation_rate"), smartctl_version=_version(doc),
        exit_status=status, exit_flags=decode_exit_status(status or 0),
        messages=_messages(doc), smart_passed=as_bool(doc, "smart_status", "passed"),
        temperature=_temperature(doc),
        drive_trip_temperature=as_int(doc, "temperature", "drive_trip"),
        power_on_hours=as_int(doc, "power_on_time", "hours"),
        attributes=tuple(_attributes(doc)), nvme=_nvme(doc),
        scsi_grown_defects=as_int(doc, "scsi_grown_defect_list"),
        self_tests=tuple(_self_tests(doc)), self_test_running=_running(doc))


def _model(doc: dict[str, Any]) -> str:
    return as_str(doc, "model_name") or " ".join(
        p for p in (as_str(doc, "vendor"), as_str(doc, "product")) if p)


def _version(doc: dict[str, Any]) -> str:
    parts = [p for p in as_list(doc, "smartctl", "version") if isinstance(p, int)]
    return ".".join(str(p) for p in parts)


def _messages(doc: dict[str, Any]) -> tuple[str, ...]:
    return tuple(as_str(m, "string") for m in as_list(doc, "smartctl", "messages")
                 if as_str(m, "string"))


def _temperature(doc: dict[str, Any]) -> int | None:
    current = as_int(doc, "temperature", "current")
    if current is None:
        current = as_int(doc, "nvme_smart_health_information_log", "temperature")
    return current


def _attributes(doc: dict[str, Any]) -> list[AtaAttribute]:
    found = []
    for row in as_list(doc, "ata_smart_attributes", "table"):
        ident = as_int(row, "id")
        if ident is None:
            continue
        found.append(AtaAttribute(
            id=ident, name=as_str(row, "name"), value=as_int(row, "value"),
            worst=as_int(row, "worst"), thresh=as_int(row, "thresh"),
            raw=as_int(row, "raw", "value"), raw_string=as_str(row, "raw", "string"),
            when_failed=as_str(row, "when_failed"),
            prefailure=as_bool(row, "flags", "prefailure") is True))
    return found


def _nvme(doc: dict[str, Any]) -> NvmeHealth | None:
    log = dig(doc, "nvme_smart_health_information_log")
    if not isinstance(log, dict):
        return None
    warning = as_int(log, "critical_warning") or 0
    return NvmeHealth(
        critical_warning=warning, warnings=decode_nvme_warning(warning),
        temperature=as_int(log, "temperature"), available_spare=as_int(log, "available_spare"),
        available_spare_threshold=as_int(log, "available_spare_threshold"),
        percentage_used=as_int(log, "percentage_used"),
        media_errors=as_int(log, "media_errors"),
        error_log_entries=as_int(log, "num_err_log_entries"),
        unsafe_shutdowns=as_int(log, "unsafe_shutdowns"),
        power_on_hours=as_int(log, "power_on_hours"))


def _self_tests(doc: dict[str, Any]) -> list[SelfTest]:
    """ATA standard/extended logs and the NVMe self-test log (smartctl 7.3+), newest first."""
    rows = (as_list(doc, "ata_smart_self_test_log", "standard", "table")
            or as_list(doc, "ata_smart_self_test_log", "extended", "table"))
    found = [SelfTest(as_str(r, "type", "string"), as_str(r, "status", "string"),
                      as_bool(r, "status", "passed"), as_int(r, "lifetime_hours"))
             for r in rows]
    for r in as_list(doc, "nvme_self_test_log", "table"):
        result = as_int(r, "self_test_result", "value")
        found.append(SelfTest(as_str(r, "self_test_code", "string"),
                              as_str(r, "self_test_result", "string"),
                              _nvme_passed(result), as_int(r, "power_on_hours")))
    return found


def _nvme_passed(result: int | None) -> bool | None:
    """NVMe figure 99 result codes: 0 completed; 1-3 aborted; 5-7 failed segments or
    a fatal error; others do not tell."""
    if result == 0:
        return True
    if result in (4, 5, 6, 7):
        return False
    return None


def _running(doc: dict[str, Any]) -> bool:
    """ATA self-test execution status 15 (upper nibble of the value) means in progress."""
    value = as_int(doc, "ata_smart_data", "self_test", "status", "value")
    nvme = as_int(doc, "nvme_self_test_log", "current_self_test_operation", "value")
    return (value is not None and value >> 4 == 15) or bool(nvme)


@dataclass(frozen=True)
class ScannedDevice:
    name: str
    device_type: str
    protocol: str


def parse_scan(data: bytes | str) -> tuple[ScannedDevice, ...]:
    """`smartctl --json --scan-open`: the devices smartctl can open, with their -d type."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SmartParseError(f"smartctl scan output is not JSON: {exc}") from None
    return tuple(ScannedDevice(as_str(d, "name"), as_str(d, "type"), as_str(d, "protocol"))
                 for d in as_list(doc, "devices") if as_str(d, "name"))


def smartctl_argv(device: str, device_type: str = "") -> list[str]:
    argv = ["smartctl", "--json=c", "-a"]
    return [*argv, "-d", device_type, device] if device_type else [*argv, device]


def read_smart(device: str, device_type: str = "",
               timeout: float = SMARTCTL_TIMEOUT) -> tuple[SmartReport | None, ToolResult]:
    """Run smartctl on `device`. The report is None when smartctl printed no JSON (not
    installed, killed); a nonzero exit status is data (see `SmartReport.exit_flags`)."""
    result = run_tool(smartctl_argv(device, device_type), timeout)
    try:
        return parse_smartctl(result.stdout), result
    except SmartParseError:
        return None, result


def scan(timeout: float = SMARTCTL_TIMEOUT) -> tuple[ScannedDevice, ...]:
    result = run_tool(["smartctl", "--json=c", "--scan-open"], timeout)
    try:
        return parse_scan(result.stdout)
    except SmartParseError:
        return ()


def start_self_test(device: str, kind: str, device_type: str = "",
                    timeout: float = SMARTCTL_TIMEOUT) -> ToolResult:
    """`smartctl -t short|long`: the drive runs the test in the background; the result
    appears in its self-test log (read by the next poll)."""
    if kind not in ("short", "long"):
        raise ValueError(f"self-test kind {kind!r}: expected short or long")
    typed = ["-d", device_type] if device_type else []
    return run_tool(["smartctl", "--json=c", "-t", kind, *typed, device], timeout)
