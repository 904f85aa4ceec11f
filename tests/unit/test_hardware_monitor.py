"""One Monitor over polls, with a collector that returns readings built from the real
fixtures (the machine here has no SMART disks and no md): alerts, history, the engine's
space flag, the disk-failed hook and the self-test schedule, in a real data directory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

from appliance.hardware.collect import Collector
from appliance.hardware.monitor import Monitor
from appliance.hardware.readers import mdstat, smart, system
from appliance.hardware.rules.base import Disk, Snapshot
from appliance.outbound.spool import Spool
from appliance.pipeline.space import MONITOR_FLAG, monitor_says_full
from appliance.settings import load_settings
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import create_maildir

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


@dataclasses.dataclass
class FixtureCollector(Collector):
    """Real readings of the data directory's space; disks and md from fixtures."""

    smart_file: str = "hdd_failing_hitachi_7.1.json"
    mdstat_file: str = "raid5_failed_member.txt"

    def collect(self) -> Snapshot:
        report = smart.parse_smartctl((FIXTURES / "smartctl" / self.smart_file).read_bytes())
        md = mdstat.parse_mdstat((FIXTURES / "mdstat" / self.mdstat_file).read_text())
        return Snapshot(time.time(), (Disk("sdz", None, report),), md,
                        space=system.read_space(self.data_dir))


def make_monitor(tmp_path: Path, **env: str) -> tuple[Monitor, FixtureCollector, Path]:
    hooks = tmp_path / "hooks"
    (hooks / "disk-failed.d").mkdir(parents=True)
    seen = tmp_path / "hook.log"
    script = hooks / "disk-failed.d" / "50-record"
    script.write_text(f"#!/bin/sh\necho \"$MAILSTEAD_DISK_NAME $MAILSTEAD_DISK_HEALTH\" "
                      f">> {seen}\n")
    script.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    settings = load_settings(None, environ={
        "MAILSTEAD_PATHS__DATA_DIR": str(data), "MAILSTEAD_HOOKS__IMAGE_DIR": str(hooks),
        "MAILSTEAD_MONITOR__POLL_INTERVAL": "60", **env})
    collector = FixtureCollector(data)
    return Monitor(settings, collector), collector, seen


def test_polls_alert_once_flag_hook_and_schedule(tmp_path: Path) -> None:
    monitor, collector, seen = make_monitor(
        tmp_path, MAILSTEAD_MONITOR__SPACE_CRITICAL_PERCENT="1",
        MAILSTEAD_MONITOR__SPACE_WARNING_PERCENT="1")
    first = asyncio.run(monitor.poll())
    keys = {n.key: n.event for n in first.notices}
    assert keys["disk_health:MSK423Y20S3HBC"] == "raised"
    assert keys["raid:md0"] == "raised"
    assert keys["raid_member:md0:sdc1"] == "raised"
    assert first.queued is None                    # no domain yet: nobody to mail (logged)
    assert first.self_tests == [("/dev/sdc", "short")]       # the report's own device name
    flag = collector.data_dir / MONITOR_FLAG
    assert monitor_says_full(collector.data_dir, time.time())
    assert flag.stat().st_mtime >= time.time() + 2 * 60          # three intervals ahead
    assert seen.read_text().splitlines() == ["sdz failing", "sdc1 unknown"]

    second = asyncio.run(monitor.poll())
    assert second.notices == []
    assert second.self_tests == []
    assert len(seen.read_text().splitlines()) == 2                # no second hook run

    collector.smart_file = "hdd_helium_ok_7.3.json"
    collector.mdstat_file = "raid10_clean.txt"
    monitor.limits = dataclasses.replace(monitor.limits, space_warning=100, space_critical=100)
    third = asyncio.run(monitor.poll())
    cleared = {n.key for n in third.notices if n.event == "cleared"}
    assert {"disk_health:MSK423Y20S3HBC", "raid:md0", "space:" + str(collector.data_dir)} \
        <= cleared
    assert not flag.exists()
    temps = monitor.history.series("temperature", "3WJMHZ6L", 0)
    assert [v for _, v in temps] == [26.0]


def test_alert_mail_reaches_the_admin_maildir(tmp_path: Path) -> None:
    monitor, collector, _ = make_monitor(tmp_path, MAILSTEAD_MONITOR__ADMIN_ADDRESS=
                                         "admin@example.test")
    directory = SqliteDirectory(monitor.conn)
    directory.add_domain("example.test")
    account = directory.add_account("admin@example.test", "x")
    create_maildir(collector.data_dir / account.maildir)
    result = asyncio.run(monitor.poll())
    assert result.queued
    (new,) = list((collector.data_dir / account.maildir / "new").iterdir())
    text = new.read_text()
    assert "Subject: [Mailstead CRITICAL] New: " in text
    assert "Disk /dev/sdc is failing" in text
    assert "From: Mailstead monitor <postmaster@example.test>" in text
    assert "To: admin@example.test" in text
    assert os.stat(new).st_size > 500


def test_alert_to_an_outside_admin_goes_into_the_outbound_queue(tmp_path: Path) -> None:
    monitor, collector, _ = make_monitor(tmp_path, MAILSTEAD_MONITOR__ADMIN_ADDRESS=
                                         "it@provider.example")
    SqliteDirectory(monitor.conn).add_domain("example.test")
    result = asyncio.run(monitor.poll())
    assert result.queued
    spool = Spool(collector.data_dir / "queue")
    (queued,) = spool.messages()
    assert queued.queue_id == result.queued
    assert queued.sender == ""                                   # null reverse-path
    assert [r.address for r in queued.recipients] == ["it@provider.example"]
    content = spool.read(result.queued)
    assert b"From: Mailstead monitor <postmaster@example.test>" in content
    spool.close()
