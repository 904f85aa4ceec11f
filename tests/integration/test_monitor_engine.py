"""The monitor with a real engine: a RAID1 with one member failed by `mdadm --fail` (real
/proc/mdstat captured in the qemu guest, fixtures SOURCES.md) mails
the admin (postmaster@ of the primary domain) into their Maildir once, the disk-failed hook
runs for the faulty member, the repaired array mails a clear; the monitor's critical-space
state makes the engine answer 452 4.3.1, and lifting it lets mail in again."""

from __future__ import annotations

import email
import os
import smtplib
import subprocess
import sys
from email.policy import default
from pathlib import Path

from appliance.smtp import replies
from harness.engine import EngineProcess

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware" / "mdstat"
ADMIN = "postmaster@example.test"


def run_monitor(engine: EngineProcess, mdstat: Path,
                **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    return subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), "monitor",
         "--once", "--mdstat", str(mdstat)],
        capture_output=True, text=True, timeout=120, env={**clean, **env}, check=False)


def subjects(engine: EngineProcess) -> list[str]:
    return [email.message_from_bytes(m, policy=default)["Subject"]
            for m in engine.messages(ADMIN)]


def test_degraded_array_mails_the_admin_once_and_the_clear(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    (hooks / "disk-failed.d").mkdir(parents=True)
    seen = tmp_path / "hook.env"
    script = hooks / "disk-failed.d" / "50-record"
    script.write_text(f"#!/bin/sh\nenv | grep ^MAILSTEAD_ >> {seen}\n")
    script.chmod(0o755)
    # Space thresholds at 100 %: how full the test machine's disk is must not add findings.
    with EngineProcess(tmp_path / "data", hooks__image_dir=str(hooks),
                       monitor__short_test_hours=0, monitor__long_test_days=0,
                       monitor__space_warning_percent=100,
                       monitor__space_critical_percent=100) as engine:
        engine.add_domain("example.test")
        engine.add_account(ADMIN)
        first = run_monitor(engine, FIXTURES / "vm_raid1_faulty.txt")
        assert first.returncode == 2, first.stderr            # critical
        (mail,) = engine.messages(ADMIN)
        message = email.message_from_bytes(mail, policy=default)
        assert message["Subject"] == ("[Mailstead CRITICAL] New: RAID /dev/md0 is degraded "
                                      "(+1 more)")
        assert message["Auto-Submitted"] == "auto-generated"
        body = message.get_content()
        assert "1 member(s) missing" in body
        assert "/dev/vdc failed in RAID /dev/md0" in body
        hook_env = seen.read_text()
        assert "MAILSTEAD_DISK_NAME=vdc" in hook_env
        assert "MAILSTEAD_DISK_REASON=/dev/vdc failed in RAID /dev/md0" in hook_env

        again = run_monitor(engine, FIXTURES / "vm_raid1_faulty.txt")
        assert again.returncode == 2
        assert len(engine.messages(ADMIN)) == 1
        assert seen.read_text() == hook_env                          # nor a second hook run

        repaired = run_monitor(engine, FIXTURES / "vm_raid1_clean_bitmap.txt")
        assert repaired.returncode == 0, repaired.stderr
        assert subjects(engine)[-1] == ("[Mailstead OK] Cleared: RAID /dev/md0 is degraded "
                                        "(+1 more)")


def test_monitor_critical_space_makes_the_engine_answer_452(tmp_path: Path) -> None:
    no_md = tmp_path / "no-mdstat"
    with EngineProcess(tmp_path / "data", monitor__space_warning_percent=1,
                       monitor__space_critical_percent=1, monitor__short_test_hours=0,
                       monitor__long_test_days=0, hooks__image_dir="") as engine:
        engine.add_domain("example.test")
        engine.add_account(ADMIN)
        engine.add_account("alice@example.test")
        assert run_monitor(engine, no_md).returncode == 2
        with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
            client.ehlo("client.example.org")
            code, text = client.mail("sender@example.org")
            assert f"{code} {text.decode()}" == replies.INSUFFICIENT_STORAGE
        # the alert itself got through: alerts skip the floor they report on
        (alert,) = [email.message_from_bytes(m, policy=default) for m in engine.messages(ADMIN)]
        assert alert["Subject"].startswith("[Mailstead CRITICAL] New: Mail storage ")
        assert "New mail is refused with 452 4.3.1" in alert.get_content()

        lifted = run_monitor(engine, no_md, MAILSTEAD_MONITOR__SPACE_CRITICAL_PERCENT="100",
                             MAILSTEAD_MONITOR__SPACE_WARNING_PERCENT="100")
        assert lifted.returncode == 0, lifted.stderr
        with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
            client.ehlo("client.example.org")
            assert client.mail("sender@example.org")[0] == 250
            assert client.rcpt("alice@example.test")[0] == 250
            assert client.data(b"Subject: hi\r\n\r\nroom again\r\n")[0] == 250
        assert len(engine.messages("alice@example.test")) == 1
        assert subjects(engine)[-1].startswith("[Mailstead OK] Cleared: Mail storage ")

