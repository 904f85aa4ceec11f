"""Administration: the settings page (from the schema), the health page (the updates page
is test_admin_updates.py's), the navigation, and the guard on every administration route:
visitors go to the login page, mail users get 403, and a POST without the CSRF token gets
400."""

from __future__ import annotations

import sqlite3
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import SCHEMA, Settings
from appliance.storage.db import open_database
from console.conftest import form_token
from webui.blueprints.admin_common import size, when
from webui.blueprints.admin_health import MonitorView, monitor_view, polyline

GETS = ["/admin/domains/", "/admin/domains/example.test/remove", "/admin/accounts/",
        "/admin/accounts/1", "/admin/accounts/1/delete", "/admin/aliases/", "/admin/queue/",
        "/admin/queue/ABC", "/admin/log/", "/admin/settings", "/admin/health",
        "/admin/updates"]
POSTS = ["/admin/domains/", "/admin/domains/example.test/remove", "/admin/accounts/",
         "/admin/accounts/1/password", "/admin/accounts/1/quota", "/admin/accounts/1/enabled",
         "/admin/accounts/1/app-passwords/1/revoke", "/admin/accounts/1/delete",
         "/admin/aliases/", "/admin/aliases/remove", "/admin/queue/ABC/retry",
         "/admin/queue/ABC/delete", "/admin/queue/flush", "/admin/settings",
         "/admin/settings/reset", "/admin/settings/apply", "/admin/updates/check",
         "/admin/updates/install", "/admin/updates/reboot", "/admin/updates/rollback"]


def test_every_admin_route_is_covered_here(app: Flask) -> None:
    """A new administration route must be added to GETS/POSTS (and so to the tests below)."""
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("admin_") for method in rule.methods or ()
              if method in ("GET", "POST")}
    listed = {(_pattern(url), "GET") for url in GETS} | {(_pattern(url), "POST")
                                                          for url in POSTS}
    assert routes == listed


def _pattern(url: str) -> str:
    replaced = url.replace("/example.test/", "/<name>/").replace("/ABC", "/<queue_id>")
    replaced = replaced.replace("/accounts/1/app-passwords/1/",
                                "/accounts/<int:account_id>/app-passwords/<int:password_id>/")
    return replaced.replace("/accounts/1", "/accounts/<int:account_id>")


@pytest.mark.parametrize("url", GETS)
def test_visitors_are_sent_to_login(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", GETS)
def test_mail_users_get_403(user_client: FlaskClient, url: str) -> None:
    assert user_client.get(url).status_code == 403


@pytest.mark.parametrize("url", POSTS)
def test_posts_need_admin_and_csrf(user_client: FlaskClient, admin_client: FlaskClient,
                                   url: str) -> None:
    token = form_token(user_client.get("/").data)
    assert user_client.post(url, data={"csrf_token": token}).status_code == 403
    admin_client.get("/admin/domains/")
    assert admin_client.post(url, data={}).status_code == 400
    assert admin_client.post(url, data={"csrf_token": "forged"}).status_code == 400


def test_navigation_links_every_area(admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/health").get_data(as_text=True)
    for label, href in [("Domains", "/admin/domains/"), ("Accounts", "/admin/accounts/"),
                        ("Aliases", "/admin/aliases/"), ("Queue", "/admin/queue/"),
                        ("Mail log", "/admin/log/"), ("Health", "/admin/health"),
                        ("Updates", "/admin/updates"), ("Settings", "/admin/settings")]:
        assert f'href="{href}"' in page
        assert f">{label}</a>" in page
    assert 'href="/admin/health" aria-current="page"' in page


def test_users_see_no_admin_navigation(user_client: FlaskClient) -> None:
    assert "/admin/" not in user_client.get("/").get_data(as_text=True)


def test_settings_page_renders_the_schema(admin_client: FlaskClient,
                                          settings: Settings) -> None:
    page = admin_client.get("/admin/settings")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for setting in SCHEMA:
        assert f"<code>{setting.key}</code>" in text, setting.name
    assert "read-only here" in text
    assert str(settings.source) in text
    assert "changed</span>" in text              # server.dev_mode etc. differ from defaults
    assert "&lt;file&gt;.1" in text               # help texts are escaped too


def test_health_page_before_the_monitor_reports(admin_client: FlaskClient) -> None:
    text = admin_client.get("/admin/health").get_data(as_text=True)
    assert "not answering" in text                 # no engine in this test
    assert "free of" in text
    assert "Data disk" in text
    assert "no readings yet" in text
    assert "SMART" in text
    assert "RAID" in text


def test_health_page_shows_monitor_alerts_and_charts(admin_client: FlaskClient,
                                                     settings: Settings) -> None:
    now = int(time.time())
    conn = open_database(settings.data_dir)
    try:
        conn.execute("INSERT INTO monitor_alerts (key, level, title, text, device, state, "
                     "first_seen, last_seen) VALUES ('raid:md0', 'critical', "
                     "'<b>RAID md0 degraded</b>', 'member sdb failed', '/dev/md0', 'active', "
                     "?, ?)", (now - 60, now))
        conn.execute("INSERT INTO monitor_alerts (key, level, title, text, device, state, "
                     "first_seen, last_seen, cleared_at) VALUES ('old', 'warning', "
                     "'Long gone', 'x', '', 'cleared', 0, 0, 1)")
        conn.executemany("INSERT INTO monitor_series (kind, subject, at, value) "
                         "VALUES ('temperature', 'WD-123', ?, ?)",
                         [(now - 3600 * n, 30.0 + n) for n in range(5)])
    finally:
        conn.close()
    text = admin_client.get("/admin/health").get_data(as_text=True)
    assert "&lt;b&gt;RAID md0 degraded&lt;/b&gt;" in text
    assert "member sdb failed" in text
    assert "Long gone" not in text
    assert "Temperature · WD-123" in text
    assert "30°C" in text                          # the newest reading
    assert "30–34°C" in text
    assert '<polyline fill="none"' in text


def test_monitor_view_without_tables_and_polyline() -> None:
    conn = sqlite3.connect(":memory:")
    assert monitor_view(conn) == MonitorView(present=False)
    assert polyline([], 0, 10) == ""
    assert polyline([(0, 1.0), (10, 3.0)], 0, 10, 100, 50) == "0.0,50.0 100.0,0.0"
    assert polyline([(5, 2.0)], 0, 10, 100, 50) == "50.0,25.0"


def test_display_filters() -> None:
    assert when(None) == "-"
    assert when(0) == "1970-01-01 00:00:00 UTC"
    assert [size(n) for n in (None, 0, 1023, 1536, 5 * 1024**3, 3 * 1024**4)] == [
        "-", "0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3072.0 GiB"]
