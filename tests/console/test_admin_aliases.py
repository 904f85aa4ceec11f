"""Administration: aliases and catch-alls (webui/blueprints/admin_aliases.py) — add with
several targets (all or none), catch-all, validation, remove one target or all, XSS in
targets escaped, and the directory then routes mail as listed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.core.addresses import parse_address
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import Alias, SqliteDirectory
from appliance.storage.interfaces import RecipientStatus
from console.conftest import DOMAIN, USER, form_token, post_form
from webui.blueprints.admin_aliases import AliasGroup, group, parse_source, parse_targets

URL = "/admin/aliases/"


@pytest.fixture
def db(settings: Settings, app: Flask) -> Iterator[sqlite3.Connection]:
    conn = open_database(settings.data_dir)
    yield conn
    conn.close()


def aliases(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(a.source, a.target) for a in SqliteDirectory(conn).list_aliases()]


def add(client: FlaskClient, source: str, targets: str) -> tuple[int, str]:
    response = post_form(client, URL, {"source": source, "targets": targets})
    return response.status_code, response.get_data(as_text=True)


def test_parsers() -> None:
    assert parse_source("@Bücher.Example") == "@xn--bcher-kva.example"
    assert parse_source("Sales@Example.Test") == "Sales@example.test"
    assert parse_targets("a@x.example, b@y.example;\nA@X.example\r\n a@x.example ,") == [
        "a@x.example", "b@y.example", "A@x.example"]


def test_group_keeps_order() -> None:
    rows = [Alias("@d.example", "a@x"), Alias("s@d.example", "b@x"), Alias("s@d.example", "c@x")]
    assert group(rows) == [AliasGroup("@d.example", ("a@x",)),
                           AliasGroup("s@d.example", ("b@x", "c@x"))]
    assert group(rows)[0].catch_all
    assert not group(rows)[1].catch_all


def test_add_alias_with_targets_and_route(admin_client: FlaskClient,
                                          db: sqlite3.Connection) -> None:
    status, _ = add(admin_client, "sales@example.test", f"{USER}, boss@remote.example")
    assert status == 302
    assert aliases(db) == [("sales@example.test", USER),
                           ("sales@example.test", "boss@remote.example")]
    resolution = SqliteDirectory(db).resolve(parse_address("sales@example.test"))
    assert resolution.status is RecipientStatus.DELIVER
    assert [m.address for m in resolution.mailboxes] == [USER]
    assert resolution.remote == ("boss@remote.example",)
    row = db.execute("SELECT action, target, details FROM audit_log ORDER BY id DESC").fetchone()
    assert (row[0], row[1]) == ("alias.add", "sales@example.test")
    assert json.loads(row[2])["targets"] == f"{USER}, boss@remote.example"
    page = admin_client.get(URL).get_data(as_text=True)
    assert "sales@example.test" in page
    assert "boss@remote.example" in page


def test_catch_all(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    assert add(admin_client, "@Example.Test", USER)[0] == 302
    resolution = SqliteDirectory(db).resolve(parse_address("anything@example.test"))
    assert [m.address for m in resolution.mailboxes] == [USER]
    assert "catch-all" in admin_client.get(URL).get_data(as_text=True)


def test_alias_over_an_account_is_flagged(admin_client: FlaskClient) -> None:
    response = post_form(admin_client, URL, {"source": USER, "targets": "x@remote.example"},
                         follow_redirects=True)
    assert "is also an account" in response.get_data(as_text=True)


@pytest.mark.parametrize(("source", "targets", "reason"), [
    ("", USER, "Source is required"),
    ("sales@example.test", "", "Targets is required"),
    ("sales@elsewhere.example", USER, "no such domain"),
    ("@not a domain", USER, "invalid domain"),
    ("bad source@example.test", USER, "malformed local part"),
    ("sales@example.test", "not-an-address", "expected local@domain"),
    ("sales@example.test", ", ; ,", "at least one target"),
    ("x" * 321, USER, "too long"),
    ("sales@example.test", ",".join(f"u{n}@x.example" for n in range(51)), "at most 50"),
    ("sales@example.test", "a@x.example b@x.example", "malformed local part"),
    ("sales@example.test", "a@x.example," * 2000, "too long"),
])
def test_add_refuses_bad_input(admin_client: FlaskClient, db: sqlite3.Connection,
                               source: str, targets: str, reason: str) -> None:
    status, page = add(admin_client, source, targets)
    assert status == 400
    assert reason in page.replace("&#39;", "'")
    assert aliases(db) == []


def test_duplicate_target_adds_nothing(admin_client: FlaskClient,
                                       db: sqlite3.Connection) -> None:
    assert add(admin_client, "sales@example.test", USER)[0] == 302
    status, page = add(admin_client, "sales@example.test", f"new@remote.example, {USER}")
    assert status == 400
    assert "already exists" in page
    assert aliases(db) == [("sales@example.test", USER)]      # new@remote was rolled back


def test_targets_are_escaped(admin_client: FlaskClient) -> None:
    evil = '"<img src=x onerror=alert(1)>"@evil.example'   # quoted: spaces, < and > allowed
    assert add(admin_client, "sales@example.test", evil)[0] == 302
    page = admin_client.get(URL).get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    status, refused = add(admin_client, "<svg onload=alert(1)>@example.test", USER)
    assert status == 400
    assert "<svg" not in refused
    assert "&lt;svg onload=alert(1)&gt;" in refused


def test_remove_one_target_then_all(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    add(admin_client, "team@example.test", f"{USER}, b@remote.example, c@remote.example")
    response = post_form(admin_client, f"{URL}remove",
                         {"source": "team@example.test", "target": "b@remote.example"},
                         token_page=URL)
    assert response.status_code == 302
    assert sorted(t for _, t in aliases(db)) == [USER, "c@remote.example"]
    response = post_form(admin_client, f"{URL}remove", {"source": "team@example.test"},
                         token_page=URL)
    assert response.status_code == 302
    assert aliases(db) == []
    row = db.execute("SELECT action, details FROM audit_log ORDER BY id DESC").fetchone()
    assert row[0] == "alias.remove"
    assert json.loads(row[1]) == {"alias_target": "(all)",
                                                               "removed": "2"}
    missing = post_form(admin_client, f"{URL}remove", {"source": "team@example.test"},
                        token_page=URL)
    assert missing.status_code == 400
    assert "no such alias" in missing.get_data(as_text=True)


def test_filter_by_domain_and_search(admin_client: FlaskClient) -> None:
    add(admin_client, "sales@example.test", USER)
    add(admin_client, "info@example.test", "help@remote.example")
    page = admin_client.get(f"{URL}?q=help@").get_data(as_text=True)
    assert "info@example.test" in page
    assert "sales@example.test" not in page
    assert "0 source(s)" in admin_client.get(f"{URL}?domain=other.example").get_data(
        as_text=True)
    assert "2 source(s)" in admin_client.get(f"{URL}?domain={DOMAIN}").get_data(as_text=True)


def test_permissions_and_csrf(admin_client: FlaskClient, user_client: FlaskClient,
                              db: sqlite3.Connection) -> None:
    assert user_client.get(URL).status_code == 403
    token = form_token(user_client.get("/").data)
    assert user_client.post(URL, data={"source": "a@example.test", "targets": USER,
                                       "csrf_token": token}).status_code == 403
    admin_client.get(URL)
    assert admin_client.post(URL, data={"source": "a@example.test", "targets": USER}
                             ).status_code == 400
    assert aliases(db) == []
