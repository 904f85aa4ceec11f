"""The set-up wizard's host and time-zone steps store settings (`server.hostname`,
`server.timezone`) in mailstead.db, and what reads settings sees them: the console's
`services.settings()`, the DNS page and zone file, client autoconfig, the CLI's loader."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import dns.zone
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import Settings
from appliance.settings_store import load_effective
from console.conftest import post_form
from webui import services

NEW_HOST = "mx.newhost.example"


def test_host_step_reaches_dns_page_autoconfig_and_loader(
        app: Flask, admin_client: FlaskClient, settings: Settings) -> None:
    page = admin_client.get("/setup/host").get_data(as_text=True)
    assert 'value="mail.example.test"' in page              # the file's, before
    response = post_form(admin_client, "/setup/host",
                         {"hostname": "MX.NewHost.Example", "domain": "example.test"})
    assert response.status_code == 302
    with app.test_request_context():
        assert services.settings()["server.hostname"] == NEW_HOST
        assert services.settings().origin("server.hostname") == "database"
    assert f'value="{NEW_HOST}"' in admin_client.get("/setup/host").get_data(as_text=True)

    zone_text = admin_client.get("/dns/example.test.zone").get_data(as_text=True)
    zone = dns.zone.from_text(zone_text, origin="example.test", check_origin=False,
                              relativize=False)
    mx = zone.find_rdataset("example.test.", "MX")
    assert [r.to_text() for r in mx] == [f"10 {NEW_HOST}."]
    assert NEW_HOST in admin_client.get("/dns").get_data(as_text=True)

    xml = admin_client.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                           query_string={"emailaddress": "alice@example.test"}).data
    hosts = {s.findtext("hostname") for s in ET.fromstring(xml).iter()
             if s.tag in ("incomingServer", "outgoingServer")}
    assert hosts == {NEW_HOST}

    assert settings.source is not None     # the engine and the CLI load the same value
    assert load_effective(settings.source, {}).settings["server.hostname"] == NEW_HOST


def test_time_zone_step_stores_the_setting(app: Flask, admin_client: FlaskClient,
                                           settings: Settings) -> None:
    assert post_form(admin_client, "/setup/timezone",
                     {"timezone": "Mars/Olympus"}).status_code == 400
    assert post_form(admin_client, "/setup/timezone",
                     {"timezone": "Europe/Berlin"}).status_code == 302
    with app.test_request_context():
        assert services.settings()["server.timezone"] == "Europe/Berlin"
    page = admin_client.get("/setup/timezone").get_data(as_text=True)
    assert '<option value="Europe/Berlin" selected>' in page
    assert settings.source is not None
    assert load_effective(settings.source, {}).settings["server.timezone"] == "Europe/Berlin"
    settings_page = admin_client.get("/admin/settings").get_data(as_text=True)
    assert 'name="server.timezone" value="Europe/Berlin"' in settings_page
