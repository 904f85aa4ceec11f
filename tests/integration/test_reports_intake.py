"""End to end: reports mailed to postmaster@ over SMTP reach the real engine, are stored
after the 250 and listed by `mailstead reports list --json` (the CLI run as a subprocess on
the engine's data directory); the mails stay in the mailbox; a zip bomb and a report sent to
someone else are delivered but never stored."""

from __future__ import annotations

import gzip
import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from data.reports.samples import (
    google_dmarc_mail,
    microsoft_dmarc_mail,
    octet_stream_mail,
    sample,
    tlsrpt_mail,
)

from harness.engine import EngineProcess

pytestmark = pytest.mark.timeout(180)
POSTMASTER = "postmaster@example.test"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    # Unsigned test mails from made-up reporters: the authentication and spam checks (tested
    # on their own) would only add DNS waits, or send them to Junk, which intake skips.
    proc = EngineProcess(tmp_path_factory.mktemp("reports") / "data",
                         reports__max_size=1 * MIB, checks__authentication=False,
                         spam__enabled=False)
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(POSTMASTER)
    proc.add_account("alice@example.test")
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def send(mx: EngineProcess, recipient: str, message: bytes,
         sender: str = "reports@reporter.example") -> None:
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=30) as client:
        assert client.sendmail(sender, [recipient], message) == {}


def reports_list(mx: EngineProcess, *args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(mx.config_file), "reports",
         "list", "--json", *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    listed: list[dict[str, Any]] = json.loads(proc.stdout)
    return listed


def log_events(mx: EngineProcess, name: str) -> list[dict[str, Any]]:
    events = []
    for line in mx.log_text().splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            entry = json.loads(line)
            if entry.get("event") == name:
                events.append(entry)
    return events


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_reports_mailed_to_postmaster_are_stored(mx: EngineProcess) -> None:
    send(mx, POSTMASTER, google_dmarc_mail())
    send(mx, POSTMASTER, microsoft_dmarc_mail())
    send(mx, "PostMaster@example.test", tlsrpt_mail(), sender="")   # null sender, any case
    stored = wait_for(lambda: len(log_events(mx, "reports.stored")) >= 3 and reports_list(mx))
    assert sorted((r["kind"], r["org_name"], r["domain"]) for r in stored) == [
        ("dmarc", "Enterprise Outlook", "example.test"),
        ("dmarc", "google.com", "example.test"),
        ("tlsrpt", "Google Inc.", "example.test")]
    assert all(r["source"].startswith("mail ") for r in stored)
    assert len(mx.messages(POSTMASTER)) == 3               # the mails stay in the mailbox
    tls = reports_list(mx, "--kind", "tlsrpt", "--domain", "example.test")
    assert [(r["messages"], r["failed"]) for r in tls] == [(44, 2)]


def test_resent_report_stored_once(mx: EngineProcess) -> None:
    before = len(log_events(mx, "reports.duplicate"))
    send(mx, POSTMASTER, google_dmarc_mail())
    wait_for(lambda: len(log_events(mx, "reports.duplicate")) > before)
    assert [r["org_name"] for r in reports_list(mx)].count("google.com") == 1


def test_attack_zip_bomb_delivered_but_refused(mx: EngineProcess) -> None:
    bomb = gzip.compress(b"<" * (16 * MIB), 9)
    count = len(mx.messages(POSTMASTER))
    send(mx, POSTMASTER, octet_stream_mail(bomb, "bomb.xml.gz"))
    rejected = wait_for(lambda: [e for e in log_events(mx, "reports.rejected")
                                 if "expands past" in e["reason"]])
    assert rejected[0]["queue_id"]
    assert len(mx.messages(POSTMASTER)) == count + 1      # delivered all the same


def test_report_to_another_address_is_not_parsed(mx: EngineProcess) -> None:
    document = sample("dmarcbis_dmarc.xml")
    send(mx, "alice@example.test", octet_stream_mail(document, "report.xml",
                                                     to="alice@example.test"))
    time.sleep(1.0)       # what would have been parsed is, by now (the others took less)
    assert "Sample Reporter" not in [r["org_name"] for r in reports_list(mx)]
    assert len(mx.messages("alice@example.test")) == 1
