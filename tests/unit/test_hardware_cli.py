"""`mailstead health [--json]` and the `mailstead monitor` daemon as real processes, and the
systemd unit's sandbox score."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.settings import render_toml

ROOT = Path(__file__).parent.parent.parent
MDSTAT = ROOT / "tests" / "fixtures" / "hardware" / "mdstat"
UNIT = ROOT / "image" / "systemd" / "mailstead-monitor.service"


def config(tmp_path: Path, **values: object) -> Path:
    """Settings for a health check of fixtures; the space thresholds at 100 % so that how
    full the test machine's own disk is (a CI disk at 88 % warned) decides nothing."""
    path = tmp_path / "mailstead.toml"
    path.write_text(render_toml({"paths.data_dir": ".", "server.hostname": "mx.example.test",
                                 "hooks.image_dir": "", "monitor.short_test_hours": 0,
                                 "monitor.long_test_days": 0,
                                 "monitor.space_warning_percent": 100,
                                 "monitor.space_critical_percent": 100, **values}))
    return path


def mailstead(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    return subprocess.run([sys.executable, "-m", "appliance", "--config", str(conf), *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_health_json_and_exit_status(tmp_path: Path) -> None:
    conf = config(tmp_path)
    done = mailstead(conf, "health", "--json", "--mdstat", str(MDSTAT / "raid5_failed_member.txt"))
    assert done.returncode == 2, done.stderr                    # critical
    view = json.loads(done.stdout)
    assert view["overall"] == "critical"
    (array,) = view["arrays"]
    assert (array["name"], array["state"], array["faulty"]) == ("md0", "degraded", ["sdc1"])
    assert {f["key"] for f in view["findings"]} == {"raid:md0", "raid_member:md0:sdc1"}
    assert view["space"]["path"] == str(tmp_path)
    assert all("health" in d for d in view["disks"])


def test_health_text_when_all_is_well(tmp_path: Path) -> None:
    done = mailstead(config(tmp_path), "health", "--mdstat",
                     str(MDSTAT / "raid10_clean.txt"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("overall: ok\n")
    assert re.search(r"/dev/md1 +raid10 +clean +\[UUUU\]", done.stdout)
    assert "problems: none" in done.stdout


def test_health_says_when_there_is_no_md_driver(tmp_path: Path) -> None:
    done = mailstead(config(tmp_path), "health", "--mdstat", str(tmp_path / "none"))
    assert "RAID: no md driver (/proc/mdstat missing)" in done.stdout


def test_daemon_polls_and_stops_on_sigterm(tmp_path: Path) -> None:
    conf = config(tmp_path, **{"monitor.poll_interval": 30})
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    log = tmp_path / "monitor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "--config", str(conf),
                                 "monitor", "--mdstat", str(MDSTAT / "raid6_recovering.txt")],
                                stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 60
        while '"monitor.poll"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()
        assert '"monitor.poll"' in text
        assert '"monitor.udev_listening"' in text or '"monitor.udev_unavailable"' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert '"monitor.stop"' in log.read_text()


def test_unit_is_sandboxed() -> None:
    analyze = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                              "--threshold=30", str(UNIT)], capture_output=True, text=True,
                             timeout=60, check=False)
    if analyze.returncode != 0 and "Unknown operation" in analyze.stderr:
        pytest.fail("systemd-analyze is too old for --offline")
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", analyze.stdout)
    assert score is not None, analyze.stdout + analyze.stderr
    assert float(score.group(1)) <= 3.0
    assert analyze.returncode == 0
    text = UNIT.read_text()
    assert "AmbientCapabilities=CAP_SYS_RAWIO CAP_SYS_ADMIN" in text
    assert "ReadWritePaths=/var/lib/mailstead" in text


def test_lean_daemon_entry_point_runs_one_poll(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    done = subprocess.run(
        [sys.executable, "-m", "appliance.hardware", "--config", str(config(tmp_path)),
         "--once", "--mdstat", str(MDSTAT / "raid1_degraded_recovering.txt")],
        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 1, done.stderr               # rebuilding: a warning
    assert '"monitor.poll"' in done.stderr
    assert '"monitor.no_admin_address"' in done.stderr     # no domain: nobody to mail


def test_hot_plug_event_runs_disk_added(tmp_path: Path) -> None:
    """A real kernel uevent (`add`, re-announced for an existing disk through sysfs)
    reaches the running daemon, which runs the disk-added hook with the disk's facts."""
    disk = sorted(p.name for p in Path("/sys/block").iterdir()
                  if "/devices/virtual/" not in str(p.resolve()))[0]
    trigger = Path("/sys/block") / disk / "uevent"
    if not os.access(trigger, os.W_OK):
        pytest.skip(f"{trigger} is not writable (not root): cannot make the kernel send one")
    hooks = tmp_path / "hooks"
    (hooks / "disk-added.d").mkdir(parents=True)
    seen = tmp_path / "added.env"
    script = hooks / "disk-added.d" / "50-record"
    script.write_text(f"#!/bin/sh\nenv | grep ^MAILSTEAD_ > {seen}\n")
    script.chmod(0o755)
    conf = config(tmp_path, **{"monitor.poll_interval": 3600, "hooks.image_dir": str(hooks)})
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    log = tmp_path / "monitor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.hardware", "--config",
                                 str(conf), "--mdstat", str(tmp_path / "none")],
                                stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 60
        while '"monitor.udev_listening"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        trigger.write_text("add")
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert seen.exists(), log.read_text()
        facts = dict(line.split("=", 1) for line in seen.read_text().splitlines())
        assert facts["MAILSTEAD_HOOK_STAGE"] == "disk-added"
        assert facts["MAILSTEAD_DISK_NAME"] == disk
        assert facts["MAILSTEAD_DISK_DEVNODE"] == f"/dev/{disk}"
        assert facts["MAILSTEAD_DISK_REASON"] == "hot-plugged"
        assert int(facts["MAILSTEAD_DISK_SIZE"]) > 0
        while log.read_text().count('"monitor.poll"') < 2:        # the event woke a poll
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
