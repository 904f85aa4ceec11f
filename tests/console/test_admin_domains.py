"""Administration: domains (webui/blueprints/admin_domains.py) — list, add with IDNA and DKIM
keys, removal refused while accounts remain, removal with the typed name; audit rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.dkim import keys
from appliance.settings import Settings
from appliance.storage.db import open_database
from console.conftest import DOMAIN, form_token, post_form

URL = "/admin/domains/"


@pytest.fixture
def db(settings: Settings, app: Flask) -> Iterator[sqlite3.Connection]:
    conn = open_database(settings.data_dir)
    yield conn
    conn.close()


def audit_rows(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, str]]]:
    return [(r["action"], r["target"], json.loads(r["details"]))
            for r in conn.execute("SELECT action, target, details FROM audit_log ORDER BY id")]


def domains(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM domains ORDER BY name")]


def test_list_shows_domains_with_counts(admin_client: FlaskClient) -> None:
    page = admin_client.get(URL)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert DOMAIN in text
    assert ('<td data-label="Accounts" class="num">'
            '<a href="/admin/accounts/?domain=example.test">1</a></td>') in text


def test_add_domain_creates_dkim_keys_and_audits(admin_client: FlaskClient,
                                                 settings: Settings,
                                                 db: sqlite3.Connection) -> None:
    response = post_form(admin_client, URL, {"domain": "  Example.ORG. "})
    assert response.status_code == 302
    assert domains(db) == ["example.org", DOMAIN]
    state = keys.load_state(settings.data_dir, "example.org")
    assert state is not None
    page = admin_client.get(URL).get_data(as_text=True)
    assert "Added domain example.org" in page
    assert state.active.rsa in page
    action, target, details = audit_rows(db)[-1]
    assert (action, target) == ("domain.add", "example.org")
    assert details["dkim_selectors"] == f"{state.active.rsa} {state.active.ed25519}"


def test_add_internationalised_domain_stores_a_label(admin_client: FlaskClient,
                                                     db: sqlite3.Connection) -> None:
    assert post_form(admin_client, URL, {"domain": "Bücher.example"}).status_code == 302
    assert "xn--bcher-kva.example" in domains(db)
    page = admin_client.get(URL).get_data(as_text=True)
    assert "xn--bcher-kva.example" in page
    assert "(bücher.example)" in page


@pytest.mark.parametrize(("typed", "reason"), [
    ("", "Domain is required"),
    ("not a domain", "invalid domain"),
    ("-bad-.example", "invalid domain"),
    ("a" * 64 + ".example", "invalid domain"),              # a label over 63 octets
    ("x." * 127 + "example", "too long"),                   # over 253 characters typed
    ("example.test", "already exists"),                     # a duplicate
])
def test_add_refuses_bad_domains(admin_client: FlaskClient, db: sqlite3.Connection,
                                 typed: str, reason: str) -> None:
    response = post_form(admin_client, URL, {"domain": typed})
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert domains(db) == [DOMAIN]
    assert not [row for row in audit_rows(db) if row[0] == "domain.add"]


def test_remove_is_refused_while_accounts_exist(admin_client: FlaskClient,
                                                db: sqlite3.Connection) -> None:
    page = admin_client.get(f"{URL}{DOMAIN}/remove")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "1 account(s)" in text
    assert "Delete them first" in text
    response = post_form(admin_client, f"{URL}{DOMAIN}/remove", {"confirm": DOMAIN},
                         token_page=URL)
    assert response.status_code == 400
    assert "still has 1 accounts" in response.get_data(as_text=True)
    assert domains(db) == [DOMAIN]


def test_remove_needs_the_typed_name(admin_client: FlaskClient,
                                     db: sqlite3.Connection) -> None:
    post_form(admin_client, URL, {"domain": "empty.example"})
    response = post_form(admin_client, f"{URL}empty.example/remove", {"confirm": "other.example"})
    assert response.status_code == 400
    assert "type the domain&#39;s name, empty.example" in response.get_data(as_text=True)
    assert "empty.example" in domains(db)
    response = post_form(admin_client, f"{URL}empty.example/remove", {"confirm": "Empty.Example"})
    assert response.status_code == 302
    assert domains(db) == [DOMAIN]
    assert audit_rows(db)[-1][:2] == ("domain.remove", "empty.example")


def test_unknown_domain_redirects_with_a_message(admin_client: FlaskClient) -> None:
    response = admin_client.get(f"{URL}nowhere.example/remove", follow_redirects=True)
    assert "No such domain: nowhere.example" in response.get_data(as_text=True)


def test_csrf_token_is_required(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    admin_client.get(URL)
    response = admin_client.post(URL, data={"domain": "example.org"})
    assert response.status_code == 400
    wrong = admin_client.post(URL, data={"domain": "example.org", "csrf_token": "x" * 43})
    assert wrong.status_code == 400
    assert domains(db) == [DOMAIN]


def test_mail_users_get_403_and_visitors_the_login(user_client: FlaskClient,
                                                   client: FlaskClient,
                                                   db: sqlite3.Connection) -> None:
    assert user_client.get(URL).status_code == 403
    token = form_token(user_client.get("/").data)
    assert user_client.post(URL, data={"domain": "x.example", "csrf_token": token}
                            ).status_code == 403
    response = client.get(URL)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert domains(db) == [DOMAIN]
