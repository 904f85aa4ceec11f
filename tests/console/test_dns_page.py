"""The DNS page (webui/blueprints/dns.py): permissions, the record table, the zone file, live
checks against Knot through the page, escaping, and the MTA-STS policy at mta-sts.<domain>."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.zone
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.dkim import keys
from appliance.outbound.mtasts import Mode, parse_policy
from appliance.settings import Settings
from appliance.storage.db import open_database
from console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    add_admin,
    add_user,
    close_app,
    console_settings,
    log_in,
    make_app,
    post_form,
)
from console.dns_world import DOMAIN, HOST, IPV4, IPV6, world_zones
from peers.dns import KnotDns
from webui.dns_check import domain_records, facts_from_settings
from webui.dns_records import mta_sts_id


def test_visitors_go_to_login_and_users_get_403(client: FlaskClient,
                                                 user_client: FlaskClient) -> None:
    assert client.get("/dns").status_code == 302
    assert user_client.get("/dns").status_code == 403
    assert user_client.get(f"/dns/{DOMAIN}.zone").status_code == 403
    assert user_client.post("/dns/check", data={}).status_code in (400, 403)


def test_page_lists_the_records_unchecked(admin_client: FlaskClient) -> None:
    page = admin_client.get("/dns")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"10 {HOST}." in text
    assert "v=spf1 mx -all" in text
    assert f"_mta-sts.{DOMAIN}" in text
    assert "not checked" in text
    assert admin_client.get("/dns?domain=other.test").status_code == 404


def test_zone_download_parses_and_unknown_domain_is_404(admin_client: FlaskClient) -> None:
    response = admin_client.get(f"/dns/{DOMAIN}.zone")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="{DOMAIN}.zone"'
    zone = dns.zone.from_text(response.get_data(as_text=True), origin=DOMAIN,
                              check_origin=False, relativize=False)
    mx = zone.find_rdataset(f"{DOMAIN}.", "MX")
    assert [r.to_text() for r in mx] == [f"10 {HOST}."]
    assert admin_client.get("/dns/nowhere.test.zone").status_code == 404
    assert admin_client.get("/dns/..zone").status_code == 404
    assert admin_client.get(f"/dns/{'a' * 300}.{DOMAIN}.zone").status_code == 404


def test_check_needs_csrf_token(admin_client: FlaskClient) -> None:
    assert admin_client.post("/dns/check", data={"domain": DOMAIN}).status_code == 400


def test_mta_sts_policy_served_for_local_domains(client: FlaskClient, app: Flask) -> None:
    response = client.get("/.well-known/mta-sts.txt", headers={"Host": f"mta-sts.{DOMAIN}"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    policy = parse_policy(response.get_data(as_text=True))
    assert policy.mode is Mode.TESTING
    assert policy.mx == (HOST,)
    assert policy.max_age == 604_800
    with app.app_context():
        facts = facts_from_settings(app.config["MAILSTEAD_SETTINGS"])
    digest = hashlib.sha256(response.get_data()).hexdigest()[:20]
    assert mta_sts_id(facts) == digest      # the TXT id follows the served policy
    for host in ("mta-sts.other.test", DOMAIN, "[::1]", f"mta-sts.{DOMAIN}.evil.test"):
        assert client.get("/.well-known/mta-sts.txt", headers={"Host": host}
                          ).status_code == 404, host


@pytest.fixture
def world_app(tmp_path: Path) -> Iterator[tuple[Flask, KnotDns, Settings]]:
    """The console with example.test's keys, pointed at Knot serving half of its records
    right and a hostile DMARC record."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port25 = f"127.0.0.1:{listener.getsockname()[1]}"
        probe = console_settings(tmp_path / "data")
        keys.ensure_keys(probe.data_dir, DOMAIN)
        zones = world_zones(domain_records(_world(probe, "127.0.0.1:1", port25), DOMAIN))
        zones[DOMAIN] = zones[DOMAIN].replace(
            '_dmarc.example.test. TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@'
            'example.test"', '_dmarc.example.test. TXT "v=DMARC1; p=none; '
            '<script>alert(1)</script>"')
        with KnotDns(tmp_path / "knot", zones) as server:
            settings = _world(probe, server.resolver_spec, port25)
            add_admin(settings)
            add_user(settings)
            app = make_app(settings)
            yield app, server, settings
            close_app(app)


def _world(base: Settings, resolver: str, port25: str) -> Settings:
    return console_settings(base.data_dir, outbound__resolver=resolver,
                            dns__public_ipv4=IPV4, dns__public_ipv6=IPV6,
                            dns__port25_target=port25, dns__check_timeout=2,
                            dns__blocklists="bl.test, clean.test")


def test_check_now_shows_states_escaped_and_audited(
        world_app: tuple[Flask, KnotDns, Settings]) -> None:
    app, _server, settings = world_app
    admin = app.test_client()
    assert log_in(admin, ADMIN, ADMIN_PASSWORD).status_code == 302
    response = post_form(admin, "/dns/check", {"domain": DOMAIN}, token_page="/dns")
    assert response.status_code == 302
    text = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "DNS checked" in text
    for state in ("✓ ok", "✗ missing", "✗ wrong"):
        assert state in text
    assert "forward-confirmed" in text                  # reverse DNS of IPV4
    assert "listed in bl.test" in text
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    conn = open_database(settings.data_dir)
    try:
        row = conn.execute("SELECT action, target FROM audit_log WHERE action = 'dns.check'"
                           ).fetchone()
        dmarc = conn.execute("SELECT state FROM dns_checks WHERE record_key = 'dmarc'"
                             ).fetchone()
    finally:
        conn.close()
    assert tuple(row) == ("dns.check", DOMAIN)
    assert dmarc[0] == "wrong"                          # p=none


def test_first_check_says_so_and_a_recheck_compares(
        world_app: tuple[Flask, KnotDns, Settings]) -> None:
    app, server, _settings = world_app
    admin = app.test_client()
    assert log_in(admin, ADMIN, ADMIN_PASSWORD).status_code == 302

    def check() -> str:
        response = post_form(admin, "/dns/check", {"domain": DOMAIN}, token_page="/dns")
        assert response.status_code == 302
        return admin.get(response.headers["Location"]).get_data(as_text=True)

    first = check()
    assert "DNS checked for the first time" in first
    assert "nothing changed" not in first
    assert 'class="flash flash-success"' in first
    # The autoconfig CNAME: found shows the alias target, then the address it leads to.
    assert f"{HOST} → {IPV4}" in first
    assert "nothing changed since the last check" in check()
    server.stop()                                   # every lookup now fails: states change
    changed = check()
    assert "record(s) changed since the last check" in changed
    assert "? no answer" in changed
