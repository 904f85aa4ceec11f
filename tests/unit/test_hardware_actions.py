"""Monitor actions on real parts: the critical-space flag read by the engine's SpaceGuard,
the disk hooks (real executables), the self-test schedule, the alert mail's form."""

from __future__ import annotations

import email
import os
import time
from email.policy import default
from pathlib import Path

import pytest

from appliance.core.errors import MailError
from appliance.core.sizes import parse_space
from appliance.hardware import hooks, notify, schedule
from appliance.hardware.alerts import Notice
from appliance.hardware.monitor import wants_failed_hook
from appliance.hardware.readers import smart
from appliance.hardware.readers.blockdev import BlockDevice
from appliance.hardware.rules.base import Disk, Thresholds
from appliance.hardware.rules.disk_health import health_of
from appliance.pipeline.space import MONITOR_FLAG, SpaceGuard, monitor_says_full
from appliance.settings import Settings, load_settings
from appliance.smtp import replies

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


def test_space_guard_refuses_while_the_monitor_flag_is_fresh(tmp_path: Path) -> None:
    guard = SpaceGuard(tmp_path, parse_space("0"), interval=0.0)
    assert guard.has_room()
    flag = tmp_path / MONITOR_FLAG
    flag.parent.mkdir()
    flag.write_bytes(b"")
    later = time.time() + 600
    os.utime(flag, (later, later))
    assert monitor_says_full(tmp_path, time.time())
    with pytest.raises(MailError) as caught:
        guard.check(100)
    assert caught.value.reply == replies.INSUFFICIENT_STORAGE
    assert caught.value.reply.startswith("452 4.3.1 ")
    past = time.time() - 1                      # the monitor died: the flag expired
    os.utime(flag, (past, past))
    assert guard.has_room()


def hook_settings(tmp_path: Path, stage: str, body: str) -> Settings:
    """Settings whose image hook directory has one hook of `stage`; the admin's is empty."""
    folder = tmp_path / "hooks" / f"{stage}.d"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "50-test"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return load_settings(None, environ={
        "MAILSTEAD_PATHS__DATA_DIR": str(tmp_path / "data"),
        "MAILSTEAD_HOOKS__IMAGE_DIR": str(tmp_path / "hooks"),
        "MAILSTEAD_HOOKS__TIMEOUT": "1"})


def test_disk_failed_hook_gets_the_disks_facts(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    settings = hook_settings(tmp_path, "disk-failed",
                             f"env | sort > {out}\necho done\nexit 3\n")
    failing = smart.parse_smartctl(
        (FIXTURES / "smartctl" / "hdd_failing_hitachi_7.1.json").read_bytes())
    block = BlockDevice("sdc", "/dev/sdc", "Hitachi HDS721050DLE630", "MSK423Y20S3HBC", "usb",
                        500107862016, True, False, "0x5000cca")
    disk = Disk("sdc", block, failing)
    env = hooks.disk_env(disk, "disk-failed", "Disk /dev/sdc is failing",
                         health_of(failing, Thresholds()))
    result = hooks.run_disk_hooks(settings, "disk-failed", env)
    (run,) = result.runs
    assert (run.status, run.returncode) == ("fail", 3)
    assert not result.ok
    assert "done" in run.output
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert seen["MAILSTEAD_DISK_NAME"] == "sdc"
    assert (seen["MAILSTEAD_DISK_SERIAL"] == \
        "MSK423Y20S3HBC")
    assert (seen["MAILSTEAD_DISK_BUS"], seen["MAILSTEAD_DISK_SIZE"],
            seen["MAILSTEAD_DISK_ROTATIONAL"]) == ("usb", "500107862016", "1")
    assert (seen["MAILSTEAD_DISK_HEALTH"], seen["MAILSTEAD_DISK_KIND"]) == ("failing", "hdd")
    assert seen["MAILSTEAD_HOOK_STAGE"] == "disk-failed"
    assert seen["PATH"].startswith("/usr/local/sbin:")          # fixed, not inherited
    assert "HOME" not in seen
    assert set(seen) == {*env, "PATH", "LANG", "LC_ALL", "PWD", "MAILSTEAD_HOOK_DEADLINE"}


def test_hook_timeout_and_missing_hook(tmp_path: Path) -> None:
    settings = hook_settings(tmp_path, "disk-added", "sleep 30\n")
    started = time.monotonic()
    (run,) = hooks.run_disk_hooks(settings, "disk-added", {}).runs
    assert run.status == "timeout"
    assert time.monotonic() - started < 10
    assert hooks.run_disk_hooks(settings, "disk-failed", {}).runs == []
    with pytest.raises(ValueError, match="stage"):
        hooks.run_disk_hooks(settings, "pre-install", {})


@pytest.mark.parametrize(("last", "now", "running", "due"), [
    ({}, 0.0, False, "short"),
    ({"first": 0.0, "short": 0.0}, 23 * 3600.0, False, None),
    ({"first": 0.0, "short": 0.0}, 24 * 3600.0, False, "short"),
    ({"first": 0.0, "short": 6 * 86400.0}, 7 * 86400.0, False, "long"),
    ({"first": 0.0}, 7 * 86400.0, True, None)])
def test_self_test_schedule(last: dict[str, float], now: float, running: bool,
                            due: str | None) -> None:
    assert schedule.due_test(now, last, 24, 7, running) == due


def test_self_tests_can_be_turned_off() -> None:
    assert schedule.due_test(1e9, {"first": 0.0}, 0, 0) is None


def notice(event: str, level: str, key: str = "raid:md0") -> Notice:
    return Notice(event, key, level, f"RAID /dev/md0 is {level}", "one member missing",
                  "/dev/md0", 1_800_000_000)


def test_alert_mail_form() -> None:
    raw = notify.compose([notice("raised", "warning", "space:/d"), notice("raised", "critical")],
                         "postmaster@example.test", "postmaster@example.test", "mx.example.test")
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    message = email.message_from_bytes(raw, policy=default)
    assert message["Subject"] == "[Mailstead CRITICAL] New: RAID /dev/md0 is critical (+1 more)"
    assert message["Auto-Submitted"] == "auto-generated"
    assert "one member missing" in message.get_content()
    cleared = notify.subject([notice("cleared", "ok")])
    assert cleared.startswith("[Mailstead OK] Cleared:")


@pytest.mark.parametrize(("event", "level", "key", "runs"), [
    ("raised", "critical", "disk_health:X", True), ("changed", "critical", "selftest:X", True),
    ("reminder", "critical", "disk_health:X", False), ("raised", "warning", "disk_health:X", False),
    ("raised", "warning", "raid_member:md0:sdc1", True), ("raised", "critical", "raid:md0", False),
    ("cleared", "ok", "disk_health:X", False)])
def test_which_notices_run_disk_failed(event: str, level: str, key: str, runs: bool) -> None:
    assert wants_failed_hook(notice(event, level, key)) == runs


