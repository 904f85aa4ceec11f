"""`mailstead dkim ...` and `mailstead dns records`, run as subprocesses like an admin does."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import datadir
from appliance.cli.dkim_cmds import public_key
from appliance.dkim.records import txt_rdata
from appliance.settings import load_settings

CONFIG = """\
[server]
hostname = "mx.example.test"
[paths]
data_dir = "."
[outbound]
resolver = "127.0.0.1:9"
dns_timeout = 1
"""


def run(config: Path, *args: str, status: int = 0) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    proc = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    return (proc.stdout if status != 2 else proc.stderr).splitlines()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "mailstead.toml"
    path.write_text(CONFIG, encoding="utf-8")
    datadir.prepare(load_settings(path, {}))
    out = run(path, "domain", "add", "example.test")
    assert out[0] == "added domain example.test"
    assert re.fullmatch(r"DKIM selectors ms\d{6}r and ms\d{6}e: publish `mailstead dns "
                        r"records example.test`", out[1])
    return path


def test_domain_add_creates_private_keys(config: Path) -> None:
    directory = config.parent / "dkim" / "example.test"
    files = sorted(p.name for p in directory.iterdir())
    assert len(files) == 3
    assert files[-1] == "state.json"
    assert all(stat.S_IMODE((directory / f).stat().st_mode) == 0o600 for f in files)


def test_dns_records_lists_everything(config: Path) -> None:
    lines = run(config, "dns", "records", "example.test")
    text = "\n".join(lines)
    host = "mx.example.test."
    assert "example.test. 3600 IN MX 10 mx.example.test." in lines
    assert 'example.test. 3600 IN TXT "v=spf1 mx -all"' in lines
    assert ('_dmarc.example.test. 3600 IN TXT "v=DMARC1; p=quarantine; '
            'rua=mailto:postmaster@example.test"') in lines
    assert re.search(r'^_mta-sts\.example\.test\. 3600 IN TXT "v=STSv1; id=\w+"$', text, re.M)
    assert "https://mta-sts.example.test/.well-known/mta-sts.txt" in text
    assert ('_smtp._tls.example.test. 3600 IN TXT "v=TLSRPTv1; '
            'rua=mailto:postmaster@example.test"') in lines
    for name in ("autoconfig", "autodiscover", "mta-sts"):
        assert f"{name}.example.test. 3600 IN CNAME {host}" in lines
    for service, port in (("_submission", 587), ("_submissions", 465), ("_imap", 143),
                          ("_imaps", 993), ("_pop3", 110), ("_pop3s", 995)):
        assert re.search(rf"^{service}\._tcp\.example\.test\. 3600 IN SRV \d+ 1 {port} "
                         rf"{re.escape(host)}$", text, re.M), service
    rsa = [line for line in lines if re.match(r"ms\d{6}r\._domainkey\.", line)]
    ed = [line for line in lines if re.match(r"ms\d{6}e\._domainkey\.", line)]
    assert len(rsa) == 1
    assert len(ed) == 1
    # the 2048-bit RSA record is longer than one string: split into 255-octet strings
    strings = re.findall(r'"([^"]*)"', rsa[0])
    assert len(strings) == 2
    assert len(strings[0]) == 255
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=")
    assert re.search(r'IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="$', ed[0])


def test_show_and_rotate_without_dns(config: Path) -> None:
    shown = run(config, "dkim", "show", "example.test")
    assert shown[0].startswith("active: ms")
    assert len(shown) == 3
    rotated = run(config, "dkim", "rotate", "example.test")
    assert rotated[0].startswith("pending selectors ")
    assert rotated[-1] == "then run `mailstead dkim rotate example.test --activate`"
    # nothing answers on port 9: the records count as missing, the old keys stay
    refused = run(config, "dkim", "rotate", "example.test", "--activate", status=1)
    assert sum(line.startswith("missing: ") for line in refused) == 2
    assert run(config, "dkim", "show", "example.test")[0] == shown[0]
    assert len(run(config, "dkim", "show", "example.test")) == 6     # active + pending
    assert len([line for line in run(config, "dns", "records", "example.test")
                if "._domainkey." in line]) == 4


def test_unknown_domain_is_a_one_line_error(config: Path) -> None:
    out = run(config, "dkim", "show", "other.test", status=2)
    assert out == ["mailstead: other.test is not a local domain: `mailstead domain add "
                   "other.test` first"]
    assert run(config, "dns", "records", "other.test", status=2)[0].startswith("mailstead: ")


def test_txt_helpers() -> None:
    assert txt_rdata("") == '""'
    assert txt_rdata('a"b\\c') == '"a\\"b\\\\c"'
    assert txt_rdata("x" * 256) == f'"{"x" * 255}" "x"'
    assert public_key("v=DKIM1; k=rsa; p=AB CD\t EF") == "ABCDEF"
    assert public_key("v=DKIM1; k=rsa") is None
