"""The readers on this machine, for real: psutil, pyudev, smartctl and mdadm. What the
kernel lacks (md, hwmon) is skipped with a message naming it; a missing tool is installed
(as root) or fails the test."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from appliance.core.run import run_tool, which
from appliance.hardware.collect import Collector
from appliance.hardware.readers import blockdev, mdstat, smart, system

TOOLS = {"smartctl": "smartmontools", "mdadm": "mdadm"}


def ensure_tool(name: str) -> str:
    """The tool's path; installs its Debian package first when missing and root."""
    if which(name) is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        TOOLS[name]], check=False, capture_output=True, timeout=300,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = which(name)
    assert found is not None, f"{name} is missing: apt-get install {TOOLS[name]}"
    return found


def test_space_and_inodes_of_a_real_directory(tmp_path: Path) -> None:
    reading = system.read_space(tmp_path)
    stat = os.statvfs(tmp_path)
    assert reading.total == stat.f_blocks * stat.f_frsize
    assert 0 < reading.percent < 100
    assert reading.inodes_total == stat.f_files


def test_io_rates_see_a_real_write(tmp_path: Path) -> None:
    before = system.read_io_counters()
    assert before, "psutil found no disks in /proc/diskstats"
    with open(tmp_path / "blob", "wb") as out:
        out.write(os.urandom(4 * 2**20))
        out.flush()
        os.fsync(out.fileno())
    rates = system.io_rates(before, system.read_io_counters(), 1.0)
    assert rates
    assert sum(r.write_bytes_per_s for r in rates) > 0


def test_udev_lists_the_same_disks_as_sysfs() -> None:
    disks = blockdev.enumerate_disks()
    physical = {p.name for p in Path("/sys/block").iterdir()
                if "/devices/virtual/" not in str(p.resolve())}
    assert {d.name for d in disks} == physical
    for disk in disks:
        assert disk.size_bytes == int((Path("/sys/block") / disk.name / "size")
                                      .read_text()) * 512


def test_udev_monitor_receives_a_real_uevent() -> None:
    try:
        monitor = blockdev.open_monitor()
    except OSError as exc:
        pytest.skip(f"no netlink uevents here ({exc}): the monitor polls only")
    assert monitor.fileno() >= 0
    disk = blockdev.enumerate_disks()[0]
    trigger = Path("/sys/block") / disk.name / "uevent"
    if not os.access(trigger, os.W_OK):
        pytest.skip(f"{trigger} is not writable (not root): cannot make the kernel send one")
    trigger.write_text("change")          # the kernel re-announces the disk: no state changes
    deadline = time.monotonic() + 10
    event = None
    while event is None and time.monotonic() < deadline:
        device = monitor.poll(timeout=1)
        event = blockdev.event_of(device) if device is not None else None
    assert event is not None, f"no uevent from {blockdev.event_source()} netlink"
    assert (event.action, event.device.name) == ("change", disk.name)


def test_temperatures_and_fans() -> None:
    hwmon = Path("/sys/class/hwmon")
    inputs = list(hwmon.glob("hwmon*/temp*_input")) if hwmon.exists() else []
    temps = system.read_temperatures()
    assert len(temps) == sum(len(v) for v in psutil.sensors_temperatures().values())
    assert len(system.read_fans()) == sum(len(v) for v in psutil.sensors_fans().values())
    if not inputs:
        pytest.skip("the kernel has no hwmon temperature sensors (/sys/class/hwmon has no "
                    "temp*_input)")
    assert temps


def test_smartctl_on_every_disk() -> None:
    ensure_tool("smartctl")
    version = run_tool(["smartctl", "--version"], 30)
    assert version.returncode == 0
    assert b"smartctl 7." in version.stdout
    scanned = smart.scan()
    for disk in blockdev.enumerate_disks():
        report, result = smart.read_smart(disk.devnode)
        assert report is not None, result.stderr
        assert report.smartctl_version.startswith("7.")
        assert report.exit_status is not None
        if disk.name not in {Path(d.name).name for d in scanned}:
            assert report.exit_flags, "a disk smartctl cannot open must say why"
    for device in scanned:
        report, _ = smart.read_smart(device.name, device.device_type)
        assert report is not None
        assert report.device == device.name


def test_mdadm_and_mdstat() -> None:
    ensure_tool("mdadm")
    assert run_tool(["mdadm", "--version"], 30).stderr.startswith(b"mdadm - v")
    found = mdstat.read_mdstat()
    if found is None:
        pytest.skip("the kernel has no md driver: /proc/mdstat is missing")
    for array in found.arrays:
        assert array.name.startswith("md")


def test_one_full_collection(tmp_path: Path) -> None:
    snapshot = Collector(tmp_path).collect()
    assert snapshot.space is not None
    assert snapshot.space.path == str(tmp_path)
    assert {d.name for d in snapshot.disks} >= {d.name for d in blockdev.enumerate_disks()}
    again = Collector(tmp_path)
    again.collect()
    assert again.collect().io          # the second reading has rates
