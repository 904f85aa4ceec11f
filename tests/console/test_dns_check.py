"""Live DNS page checks (webui/dns_check.py, dns_store.py) against Knot on loopback serving
half of example.test's records correctly (tests/console/dns_world.py)."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.dkim import keys
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import create_maildir
from console.dns_world import (
    DOMAIN,
    EXPECTED,
    HOST,
    IPV4,
    publish_world,
    world_settings,
    world_zones,
)
from peers.dns import KnotDns
from webui import dns_notify, dns_store
from webui.dns_check import (
    Result,
    compare_txt,
    domain_records,
    run_checks,
    spf_verdict,
    tag,
)
from webui.dns_records import Record, ServerFacts

FACTS = ServerFacts(HOST, ipv4=IPV4)


@pytest.fixture
def listener() -> Iterator[str]:
    """A local TCP listener standing for a remote MX's port 25."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def world(tmp_path: Path, listener: str) -> Iterator[tuple[Settings, KnotDns]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    keys.ensure_keys(data_dir, DOMAIN)
    SqliteDirectory(open_database(data_dir)).add_domain(DOMAIN)
    server = KnotDns(tmp_path / "knot", {})
    settings = world_settings(data_dir, server.resolver_spec, listener)
    publish_world(server, settings)
    try:
        yield settings, server
    finally:
        server.stop()


def test_every_check_ends_in_its_expected_state(world: tuple[Settings, KnotDns]) -> None:
    settings, _ = world
    results = {r.key: r for r in run_checks(settings, [DOMAIN])}
    dkim = sorted(k for k in results if k.startswith("dkim:"))
    assert [results[k].state for k in dkim] == ["wrong", "ok"]   # ...e (ed25519) before ...r
    states = {k: r.state for k, r in results.items() if not k.startswith("dkim:")}
    assert states == EXPECTED
    assert results["mx"].found == f"10 {HOST}"
    assert results[f"ptr:{IPV4}"].note == "forward-confirmed"
    assert "127.0.0.2" in results[f"dnsbl:bl.test:{IPV4}"].found
    assert "another address" in results["host-aaaa"].note
    assert results["srv:_imap._tcp"].found == f"10 1 1143 {HOST}"
    assert results["autoconfig"].found == f"{HOST} → {IPV4}"     # the CNAME, then the A


def test_port25_closed_is_wrong(world: tuple[Settings, KnotDns]) -> None:
    settings, _ = world
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"   # bound, never listening
        values = dict(settings.values, **{"dns.port25_target": closed})
        results = run_checks(Settings(values, settings.base_dir), [])
    port25 = next(r for r in results if r.key == "port25")
    assert port25.state == "wrong"


def test_dead_resolver_gives_errors_not_failures(tmp_path: Path, listener: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))   # receives queries, never answers
        spec = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = world_settings(data_dir, spec, listener, **{"dns.check_timeout": 1})
        results = run_checks(settings, [DOMAIN])
    domain = [r for r in results if r.domain == DOMAIN]
    assert domain
    assert {r.state for r in domain} == {"error"}
    assert all("timeout" in r.note for r in domain)


def test_results_stored_and_changes_alert(world: tuple[Settings, KnotDns]) -> None:
    settings, server = world
    conn = open_database(settings.data_dir)
    assert dns_store.daily_recheck(settings, conn, now=0) == []   # first check: no alerts
    assert dns_store.daily_recheck(settings, conn) is None         # not due yet
    checked = dns_store.last_checked(conn)
    assert checked is not None
    assert dns_store.due(conn, checked + dns_store.DAILY)            # a day later
    SqliteDirectory(conn).add_domain("second.test")
    assert dns_store.due(conn, checked)                              # never checked
    SqliteDirectory(conn).remove_domain("second.test")
    stored = {s.result.key: s.result.state for s in dns_store.latest(conn, DOMAIN)}
    assert stored["mx"] == "ok"
    assert stored["tls-rpt"] == "missing"
    server_rows = dns_store.latest(conn, "")
    assert {s.result.key for s in server_rows} >= {"port25", f"ptr:{IPV4}"}
    # The admin publishes TLS-RPT and the MX vanishes: two alerts.
    records = domain_records(settings, DOMAIN)
    zones = world_zones(records)
    zones[DOMAIN] = zones[DOMAIN].replace(f"example.test. MX 10 {HOST}.\n", "") + (
        '_smtp._tls.example.test. TXT "v=TLSRPTv1; rua=mailto:tls@example.test"\n')
    server.stop()
    server.zones = zones
    server.start()
    alerts = dns_store.check_and_save(settings, conn, [DOMAIN])
    assert {(a.key, a.old_state, a.new_state) for a in alerts} == {
        ("mx", "ok", "missing"), ("tls-rpt", "missing", "ok")}
    assert [a.key for a in dns_store.alerts(conn)][:2] == [a.key for a in reversed(alerts)]


def test_removed_domain_rows_go(world: tuple[Settings, KnotDns]) -> None:
    settings, _ = world
    conn = open_database(settings.data_dir)
    dns_store.save(conn, [Result("gone.test", "mx", "", "gone.test", "MX", "", "", "ok")])
    dns_store.check_and_save(settings, conn)
    assert dns_store.latest(conn, "gone.test") == []
    assert dns_store.latest(conn, DOMAIN)


def txt(key: str, value: str) -> Record:
    return Record(key, "", "example.test", "TXT", value)


def test_txt_compared_by_meaning() -> None:
    spf = txt("spf", "v=spf1 mx -all")
    assert compare_txt(spf, ["google-site-verification=x", "v=spf1 a mx ~all"], FACTS)[0] \
        == "ok"
    assert compare_txt(spf, ["v=spf1 mx -all", "v=spf1 -all"], FACTS)[0] == "wrong"
    assert compare_txt(spf, ["other"], FACTS)[0] == "wrong"
    dmarc = txt("dmarc", "v=DMARC1; p=quarantine")
    assert compare_txt(dmarc, ["v=DMARC1;p=reject; rua=mailto:x@y"], FACTS)[0] == "ok"
    assert compare_txt(dmarc, ["v=DMARC1; p=none"], FACTS)[0] == "wrong"
    dkim = txt("dkim:s", "v=DKIM1; k=rsa; p=AB CD")
    assert compare_txt(dkim, ["v=DKIM1; k=rsa; p=ABCD"], FACTS)[0] == "ok"
    assert compare_txt(dkim, ["v=DKIM1; p=ABCE"], FACTS)[0] == "wrong"
    sts = txt("mta-sts", "v=STSv1; id=abc")
    assert compare_txt(sts, ["v=STSv1; id=abc;"], FACTS)[0] == "ok"
    assert compare_txt(sts, ["v=STSv1; id=abd"], FACTS)[0] == "wrong"
    assert compare_txt(txt("tls-rpt", ""), ["v=TLSRPTv1;rua=mailto:a@b"], FACTS)[0] == "ok"


def test_spf_verdict() -> None:
    assert spf_verdict("v=spf1 ip4:192.0.2.0/24 -all", FACTS)[0] == "ok"
    assert spf_verdict(f"v=spf1 a:{HOST} -all", FACTS)[0] == "ok"
    assert spf_verdict("v=spf1 ip4:198.51.100.1 -all", FACTS)[0] == "wrong"
    assert spf_verdict("v=spf1 mx +all", FACTS)[0] == "wrong"
    assert spf_verdict("v=spf1 include:_spf.example.net -all", FACTS)[0] == "wrong"
    assert tag("v=DKIM1; P = a b c", "p") == "abc"


def test_changes_are_mailed_to_the_admin_once(world: tuple[Settings, KnotDns]) -> None:
    settings, server = world
    conn = open_database(settings.data_dir)
    directory = SqliteDirectory(conn)
    account = directory.add_account(f"postmaster@{DOMAIN}", "x")
    maildir = settings.data_dir / account.maildir
    create_maildir(maildir)
    dns_store.check_and_save(settings, conn, [DOMAIN])
    assert dns_notify.mail_alerts(settings, conn) is None          # a first check: nothing
    zones = world_zones(domain_records(settings, DOMAIN))
    zones[DOMAIN] = zones[DOMAIN].replace(f"example.test. MX 10 {HOST}.\n", "")
    server.stop()
    server.zones = zones
    server.start()
    [alert] = dns_store.check_and_save(settings, conn, [DOMAIN])
    assert (alert.key, alert.new_state) == ("mx", "missing")
    queue_id = dns_notify.mail_alerts(settings, conn)
    assert queue_id
    [delivered] = list((maildir / "new").iterdir())
    message = email.message_from_bytes(delivered.read_bytes())
    assert message["Subject"] == "[Mailstead WARNING] DNS: 1 record check(s) changed"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["To"] == f"postmaster@{DOMAIN}"
    assert f"MX {DOMAIN}: ok -> missing" in message.get_payload()
    assert dns_notify.unmailed(conn) == []
    assert dns_notify.mail_alerts(settings, conn) is None          # mailed once
