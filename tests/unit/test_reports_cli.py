"""`mailstead reports import|list|show|failures`, run as subprocesses like an admin does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data.reports.samples import (
    GOOGLE_ZIP_NAME,
    gzipped,
    microsoft_dmarc_mail,
    sample,
    zipped,
)

from appliance import datadir
from appliance.settings import load_settings

CONFIG = '[server]\nhostname = "mx.example.test"\n[paths]\ndata_dir = "."\n'


def run(config: Path, *args: str, status: int = 0) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    proc = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    return proc.stdout if status != 2 else proc.stderr


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory into which every sample kind was imported once."""
    path = tmp_path_factory.mktemp("reports-cli") / "mailstead.toml"
    path.write_text(CONFIG, encoding="utf-8")
    datadir.prepare(load_settings(path, {}))
    files = {
        "microsoft.eml": microsoft_dmarc_mail(),
        GOOGLE_ZIP_NAME: zipped("google.xml", sample("google_dmarc.xml")),
        "tls.json.gz": gzipped(sample("rfc8460_tlsrpt.json")),
        "dmarcbis.xml": sample("dmarcbis_dmarc.xml"),
    }
    for name, data in files.items():
        (path.parent / name).write_bytes(data)
        out = run(path, "reports", "import", str(path.parent / name))
        assert out.startswith("stored: "), out
    return path


def test_import_again_is_a_duplicate(config: Path) -> None:
    out = run(config, "reports", "import", str(config.parent / "microsoft.eml"))
    assert out.startswith("already stored: dmarc report 3f6a3b9e2c4d4e0f9a8b7c6d5e4f3a2b")


def test_import_of_no_report_fails(config: Path) -> None:
    junk = config.parent / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    assert run(config, "reports", "import", str(junk), status=1).startswith(
        "skipped: unreadable zip")
    assert "cannot read" in run(config, "reports", "import", str(config.parent / "none.eml"),
                                status=2)


def test_list_json_and_text(config: Path) -> None:
    listed = json.loads(run(config, "reports", "list", "--json"))
    assert [(r["kind"], r["org_name"]) for r in listed] == [
        ("dmarc", "Enterprise Outlook"), ("dmarc", "google.com"),     # newest period first
        ("tlsrpt", "Company-X"), ("dmarc", "Sample Reporter")]
    assert all(r["source"].startswith("import ") for r in listed)
    ours = json.loads(run(config, "reports", "list", "--domain", "company-y.example",
                          "--json"))
    assert [r["report_id"] for r in ours] == ["5065427c-23d3-47ca-b6e0-946ea0e8c4be"]
    text = run(config, "reports", "list", "--kind", "tlsrpt")
    assert "company-y.example" in text
    assert "5629" in text
    assert "303 failed" in text


def test_show(config: Path) -> None:
    listed = json.loads(run(config, "reports", "list", "--json", "--kind", "dmarc"))
    google_id = next(r["id"] for r in listed if r["org_name"] == "google.com")
    text = run(config, "reports", "show", str(google_id))
    assert "dmarc report 13729587403175624651 from google.com" in text
    assert "203.0.113.99" in text
    assert "quarantine" in text
    detail = json.loads(run(config, "reports", "show", str(google_id), "--json"))
    assert detail["records"][0]["auth_results"]["dkim"][0]["selector"] == "ms20231101r"
    assert "no report with id 99999" in run(config, "reports", "show", "99999", status=2)
    (tls,) = json.loads(run(config, "reports", "list", "--json", "--kind", "tlsrpt"))
    text = run(config, "reports", "show", str(tls["id"]))
    assert "sts company-y.example: 5326 ok, 303 failed" in text
    assert "starttls-not-supported x200 mx2.mail.company-y.example 2001:db8:abcd:13::1" in text


def test_failures(config: Path) -> None:
    report = json.loads(run(config, "reports", "failures", "--days", "100000", "--json"))
    assert [(f["source_ip"], f["messages"]) for f in report["dmarc"]] == [
        ("203.0.113.99", 3), ("198.51.100.7", 2)]
    assert report["tls"][0]["result_type"] == "starttls-not-supported"
    assert "no failures reported" in run(config, "reports", "failures", "--days", "1")
