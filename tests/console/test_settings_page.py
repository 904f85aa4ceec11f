"""The console's settings page (/admin/settings): editable settings as a form per section,
saved in mailstead.db (appliance/settings_store.py), audited, validated per field, reset
to the file's or the default value; boot-level settings read-only; the console uses an edit
on the next request."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import SCHEMA, SETTINGS_BY_NAME, Setting, Settings, load_settings
from appliance.settings_store import read_rows
from appliance.storage.db import open_database
from console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    add_admin,
    close_app,
    console_settings,
    form_token,
    log_in,
    make_app,
)
from webui import services
from webui.blueprints import admin_system

PAGE = "/admin/settings"


class FormReader(HTMLParser):
    """The fields one section's form sends as a browser would (checked boxes only)."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section, self.inside = section, False
        self.fields: dict[str, str] = {}
        self.select: str | None = None
        self.names: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.inside = a.get("id") == f"section-{self.section}"
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            self.names.append(a["name"])
            if a.get("type") != "checkbox" or "checked" in a:
                self.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a["name"]
            self.names.append(a["name"])
        elif tag == "option" and self.select and "selected" in a:
            self.fields[self.select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None


def read_form(client: FlaskClient, section: str) -> FormReader:
    reader = FormReader(section)
    reader.feed(client.get(PAGE).get_data(as_text=True))
    return reader


def save(client: FlaskClient, section: str, **changes: str) -> tuple[int, str]:
    """Send the section's form as shown, with `changes` (name with `__` for `.`)."""
    fields = {**read_form(client, section).fields,
              **{k.replace("__", "."): v for k, v in changes.items()}}
    response = client.post(PAGE, data=fields)
    return response.status_code, response.get_data(as_text=True)


def audit_rows(settings: Settings) -> list[tuple[str, str, dict[str, str]]]:
    conn = open_database(settings.data_dir)
    rows = conn.execute("SELECT action, target, details FROM audit_log WHERE action LIKE "
                        "'settings.%' ORDER BY id").fetchall()
    conn.close()
    return [(r[0], r[1], json.loads(r[2])) for r in rows]


def stored(settings: Settings) -> dict[str, str]:
    conn = open_database(settings.data_dir)
    try:
        return read_rows(conn)
    finally:
        conn.close()


def test_form_fields_by_type_and_boot_level_read_only(admin_client: FlaskClient) -> None:
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert ('type="number" id="setting-limits.max_recipients" name="limits.max_recipients" '
            'value="100" min="1" max="100000"') in page
    assert 'type="checkbox" id="setting-greylist.enabled" name="greylist.enabled"' in page
    assert '<select id="setting-log.level" name="log.level"' in page
    assert 'type="text" id="setting-dnsbl.ip_zones" name="dnsbl.ip_zones"' in page
    for boot in ("listen.smtp_port", "paths.data_dir", "tls.cert_file", "server.dev_mode",
                 "auth.argon2_memory_kib", "monitor.poll_interval"):
        assert f'name="{boot}"' not in page
    assert "Boot-level: set in mailstead.toml." in page
    names = set(read_form(admin_client, "limits").names)
    assert {s.name for s in SCHEMA if s.section == "limits"} <= names


def test_unchanged_form_stores_nothing(admin_client: FlaskClient, settings: Settings) -> None:
    for section in ("limits", "greylist", "dnsbl", "server", "console"):
        status, _ = save(admin_client, section)
        assert status == 302
    assert stored(settings) == {}
    assert audit_rows(settings) == []


def test_edit_is_stored_audited_and_seen_at_once(app: Flask, admin_client: FlaskClient,
                                                 settings: Settings) -> None:
    response = admin_client.post(PAGE, data={**read_form(admin_client, "limits").fields,
                                             "limits.max_recipients": "250"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/settings#section-limits")
    assert stored(settings) == {"limits.max_recipients": "250"}
    assert audit_rows(settings) == [("settings.change", "limits.max_recipients",
                                     {"old": "100", "new": "250"})]
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert "Saved limits.max_recipients." in page
    assert 'name="limits.max_recipients" value="250"' in page
    assert "set here; Reset returns to <code class=\"wrap\">100</code>" in page
    with app.test_request_context():
        assert services.settings()["limits.max_recipients"] == 250
        assert services.settings().origin("limits.max_recipients") == "database"


def test_checkbox_off_and_select(admin_client: FlaskClient, settings: Settings) -> None:
    fields = read_form(admin_client, "greylist").fields
    fields.pop("greylist.enabled")                       # the box unticked
    assert admin_client.post(PAGE, data=fields).status_code == 302
    assert save(admin_client, "log", log__level="debug")[0] == 302
    assert stored(settings) == {"greylist.enabled": "false", "log.level": "debug"}
    assert ("settings.change", "greylist.enabled", {"old": "true", "new": "false"}) in (
        audit_rows(settings))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("limits__max_recipients", "0", "an integer from 1 to 100000"),
    ("limits__max_recipients", "100001", "an integer from 1 to 100000"),
    ("limits__max_recipients", "ten", "an integer from 1 to 100000"),
    ("limits__min_free_space", "lots", "bytes (e.g."),
    ("limits__min_free_space", "9" * 1001, "longer than 1000 characters"),
])
def test_bad_value_is_400_with_the_message_and_nothing_saved(
        admin_client: FlaskClient, settings: Settings, name: str, text: str,
        message: str) -> None:
    status, page = save(admin_client, "limits", limits__max_connections="5", **{name: text})
    assert status == 400
    assert "Nothing was saved" in page
    assert message in page
    assert 'aria-invalid="true"' in page
    assert stored(settings) == {}                        # not even max_connections
    assert audit_rows(settings) == []


def test_typed_values_are_escaped(admin_client: FlaskClient, settings: Settings) -> None:
    hostile = '"><script>alert(1)</script>'
    status, page = save(admin_client, "dns", dns__public_ipv4=hostile)
    assert status == 400
    assert "<script>alert(1)</script>" not in page
    assert "&#34;&gt;&lt;script&gt;" in page
    assert save(admin_client, "reports", reports__org_name=hostile)[0] == 302
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert stored(settings) == {"reports.org_name": hostile}


def test_reset_returns_to_the_default(admin_client: FlaskClient, settings: Settings) -> None:
    assert save(admin_client, "queue", queue__max_age="7200")[0] == 302
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert 'name="reset" value="queue.max_age"' in page
    response = admin_client.post(f"{PAGE}/reset", data={"csrf_token": form_token(page),
                                                         "reset": "queue.max_age"})
    assert response.status_code == 302
    assert stored(settings) == {}
    assert audit_rows(settings)[-1] == ("settings.reset", "queue.max_age", {"old": "7200"})
    assert "it is 432000 again" in admin_client.get(PAGE).get_data(as_text=True)
    again = admin_client.post(f"{PAGE}/reset", data={"csrf_token": form_token(page),
                                                      "reset": "queue.max_age"})
    assert again.status_code == 404


def test_csrf_and_permissions(client: FlaskClient, admin_client: FlaskClient,
                              user_client: FlaskClient, settings: Settings) -> None:
    fields = read_form(admin_client, "limits").fields
    forged = {**fields, "csrf_token": "forged", "limits.max_recipients": "5"}
    assert admin_client.post(PAGE, data=forged).status_code == 400
    without = {k: v for k, v in fields.items() if k != "csrf_token"}
    assert admin_client.post(PAGE, data=without).status_code == 400
    token = form_token(user_client.get("/").data)
    assert user_client.post(PAGE, data={**without, "csrf_token": token}).status_code == 403
    assert user_client.get(PAGE).status_code == 403
    assert "/login" in client.get(PAGE).headers["Location"]
    assert stored(settings) == {}


def test_unknown_section_is_400(admin_client: FlaskClient) -> None:
    fields = read_form(admin_client, "limits").fields
    for section in ("paths", "listen", "nope", ""):
        assert admin_client.post(PAGE, data={**fields, "section": section}).status_code == 400


def test_console_networks_cannot_lock_the_admin_out(app: Flask, admin_client: FlaskClient,
                                                    settings: Settings) -> None:
    status, page = save(admin_client, "console", console__allowed_networks="10.0.0.0/8")
    assert status == 400
    assert "your own address 127.0.0.1 is not in these networks" in page
    status, _ = save(admin_client, "console",
                     console__allowed_networks="127.0.0.0/8, 192.168.0.0/16")
    assert status == 302
    # in force at the next request: a LAN address outside the new networks is refused
    outsider = app.test_client()
    for address, status in (("10.1.2.3", 403), ("192.168.1.9", 200)):
        response = outsider.get("/login", base_url="https://mail.example.test",
                                environ_base={"REMOTE_ADDR": address})
        assert response.status_code == status, address


def test_environment_values_are_shown_not_editable(tmp_path: Path) -> None:
    base = console_settings(tmp_path / "data")
    assert base.source is not None
    current = load_settings(base.source, {"MAILSTEAD_LIMITS__MAX_RECIPIENTS": "7"})
    add_admin(current)
    app = make_app(current)
    try:
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        page = client.get(PAGE).get_data(as_text=True)
        assert 'name="limits.max_recipients"' not in page
        assert "MAILSTEAD_LIMITS__MAX_RECIPIENTS" in page
        assert save(client, "limits", limits__max_connections="9")[0] == 302
        assert stored(current) == {"limits.max_connections": "9"}
    finally:
        close_app(app)


@pytest.fixture
def bad_row(settings: Settings) -> Iterator[sqlite3.Connection]:
    conn = open_database(settings.data_dir)
    conn.execute("INSERT INTO settings (key, value) VALUES ('listen.smtp_port', '2525')")
    yield conn
    conn.close()


def test_ignored_rows_are_shown_and_removable(bad_row: sqlite3.Connection,
                                              admin_client: FlaskClient,
                                              settings: Settings) -> None:
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert "Stored values not in use" in page
    assert "setting listen.smtp_port is boot-level" in page
    response = admin_client.post(f"{PAGE}/reset", data={"csrf_token": form_token(page),
                                                         "reset": "listen.smtp_port"})
    assert response.status_code == 302
    assert read_rows(bad_row) == {}
    assert "Stored values not in use" not in admin_client.get(PAGE).get_data(as_text=True)


SECRET = Setting("auth", "test_secret", str, "", "A test-only secret.", secret=True,
                 optional=True)
FIRST, SECOND = "first-secret-value-1", "second-secret-value-2"


def test_secrets_are_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting is secret today; one that becomes so is never shown, sent back or
    audited in clear (a blank field keeps it)."""
    monkeypatch.setitem(SETTINGS_BY_NAME, SECRET.name, SECRET)
    monkeypatch.setattr(admin_system, "SCHEMA", (*SCHEMA, SECRET))
    base = console_settings(tmp_path / "data")
    base = dataclasses.replace(base, values={**base.values, SECRET.name: FIRST})
    add_admin(base)
    app = make_app(base)
    try:
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        page = client.get(PAGE).get_data(as_text=True)
        assert FIRST not in page
        assert ('type="password" id="setting-auth.test_secret" name="auth.test_secret" '
                'value=""') in page
        assert save(client, "auth")[0] == 302                     # blank: kept
        assert stored(base) == {}
        status, page = save(client, "auth", auth__test_secret=SECOND,
                            auth__max_failures="0")               # refused with the other
        assert status == 400
        assert SECOND not in page
        assert save(client, "auth", auth__test_secret=SECOND)[0] == 302
        assert stored(base) == {SECRET.name: SECOND}
        page = client.get(PAGE).get_data(as_text=True)
        assert SECOND not in page
        assert FIRST not in page
        assert audit_rows(base) == [("settings.change", SECRET.name,
                                     {"old": "********", "new": "********"})]
        response = client.post(f"{PAGE}/reset", data={"csrf_token": form_token(page),
                                                      "reset": SECRET.name})
        assert response.status_code == 302
        page = client.get(PAGE).get_data(as_text=True)
        assert FIRST not in page
        assert SECOND not in page
    finally:
        close_app(app)
