"""`mailstead dns records` and `mailstead dns check` (appliance/cli/dns_cmds.py) on a data
dir whose resolver is Knot serving half of example.test's records right."""

from __future__ import annotations

import socket
from pathlib import Path

import dns.zone
import pytest

from appliance.cli import main
from appliance.dkim import keys
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from console.conftest import console_settings
from console.dns_world import DOMAIN, IPV4, IPV6, world_zones
from peers.dns import KnotDns
from webui import dns_store
from webui.dns_check import domain_records


def test_records_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port25 = f"127.0.0.1:{listener.getsockname()[1]}"
        options = {"dns__public_ipv4": IPV4, "dns__public_ipv6": IPV6,
                   "dns__port25_target": port25, "dns__check_timeout": 2,
                   "dns__blocklists": "bl.test"}
        settings = console_settings(data_dir, **options)
        SqliteDirectory(open_database(data_dir)).add_domain(DOMAIN)
        keys.ensure_keys(data_dir, DOMAIN)
        config = str(data_dir / "mailstead.toml")
        assert main(["--config", config, "dns", "records", DOMAIN]) == 0
        zone_text = capsys.readouterr().out
        zone = dns.zone.from_text(zone_text, origin=DOMAIN, check_origin=False,
                                  relativize=False)
        assert zone.find_rdataset(f"{DOMAIN}.", "MX")
        assert main(["--config", config, "dns", "records", "other.test"]) == 2
        with KnotDns(tmp_path / "knot", world_zones(domain_records(settings, DOMAIN))) as knot:
            settings = console_settings(data_dir, outbound__resolver=knot.resolver_spec,
                                        **options)
            capsys.readouterr()
            assert main(["--config", config, "dns", "check"]) == 1     # some are not ok
            out = capsys.readouterr().out
            assert f"ok      MX    {DOMAIN}" in out
            assert f"MISSING TXT   _smtp._tls.{DOMAIN}" in out
            assert "changed since the last check" in out
            assert main(["--config", config, "dns", "check", "--daily"]) == 0
            assert "nothing to do" in capsys.readouterr().out
    conn = open_database(data_dir)
    assert {s.result.key for s in dns_store.latest(conn, "")} == {
        f"ptr:{IPV4}", f"ptr:{IPV6}", "port25", f"dnsbl:bl.test:{IPV4}"}
