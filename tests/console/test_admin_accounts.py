"""Administration: accounts (webui/blueprints/admin_accounts.py) — create with the strong
password rule and quota, duplicates and bad input refused, reset password, quota,
disable/enable, delete with the typed address, app passwords listed and revoked, XSS in
names escaped, and a 1,000-account directory listed quickly."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.auth.passwords import Passwords
from appliance.settings import Settings
from appliance.storage.app_passwords import AppPasswordStore
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from console.conftest import DOMAIN, USER, form_token, post_form

URL = "/admin/accounts/"
GOOD = "violet stapler 93 tide"
MIB = 1024 * 1024


@pytest.fixture
def db(settings: Settings, app: Flask) -> Iterator[sqlite3.Connection]:
    conn = open_database(settings.data_dir)
    yield conn
    conn.close()


def create(client: FlaskClient, local: str, password: str = GOOD, again: str | None = None,
           quota: str = "0", domain: str = DOMAIN) -> tuple[int, str]:
    response = post_form(client, URL, {"local": local, "domain": domain, "password": password,
                                       "password2": password if again is None else again,
                                       "quota_mib": quota})
    return response.status_code, response.get_data(as_text=True)


def account_id(conn: sqlite3.Connection, address: str) -> int:
    return SqliteDirectory(conn).get_account(address).id


def last_audit(conn: sqlite3.Connection) -> tuple[str, str, dict[str, str]]:
    row = conn.execute("SELECT action, target, details FROM audit_log "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    return row[0], row[1], json.loads(row[2])


def test_create_account(admin_client: FlaskClient, settings: Settings,
                        db: sqlite3.Connection) -> None:
    status, _ = create(admin_client, "Bob", quota="250")
    assert status == 302
    account = SqliteDirectory(db).get_account("bob@example.test")
    assert account.address == "Bob@example.test"
    assert account.quota_bytes == 250 * MIB
    assert (settings.data_dir / account.maildir / "new").is_dir()
    stored = SqliteDirectory(db).password_hash("bob@example.test")
    assert stored is not None
    assert Passwords.from_settings(settings).verify(stored, GOOD).ok
    assert last_audit(db) == ("account.create", "Bob@example.test",
                              {"quota_bytes": str(250 * MIB)})
    assert GOOD not in json.dumps(last_audit(db))


@pytest.mark.parametrize(("local", "password", "again", "quota", "reason"), [
    ("alice", GOOD, None, "0", "already exists"),                  # duplicate (case too)
    ("ALICE", GOOD, None, "0", "already exists"),
    ("bad local", GOOD, None, "0", "malformed local part"),
    ("", GOOD, None, "0", "Name is required"),
    ("x" * 65, GOOD, None, "0", "too long"),
    ("bob", "short1", None, "0", "at least 10 characters"),
    ("bob", GOOD, "violet stapler 93 tidE", "0", "the two passwords differ"),
    ("bob", "aaaaabbbbbaaaaa", None, "0", "at least 6 different characters"),
    ("bobby", "my bobby password 7", None, "0", "must not contain the account"),
    ("bob", "password123", None, "0", "most common"),
    ("bob", "x" * 1025, None, "0", "too long"),
    ("bob", GOOD, None, "-1", "Quota (MiB) must be from 0"),
    ("bob", GOOD, None, "lots", "must be a whole number"),
    ("bob", GOOD, None, "9" * 30, "too long"),
])
def test_create_refuses_bad_input(admin_client: FlaskClient, db: sqlite3.Connection,
                                  local: str, password: str, again: str | None, quota: str,
                                  reason: str) -> None:
    status, page = create(admin_client, local, password, again, quota)
    assert status == 400
    assert reason in page.replace("&#39;", "'")
    assert [a.address for a in SqliteDirectory(db).list_accounts()] == [USER]


def test_create_refuses_a_foreign_domain(admin_client: FlaskClient,
                                         db: sqlite3.Connection) -> None:
    status, page = create(admin_client, "bob", domain="elsewhere.example")
    assert status == 400
    assert "not one of this server&#39;s domains" in page
    status, page = create(admin_client, "bob", domain="bad domain")
    assert status == 400
    assert "invalid domain" in page
    assert len(SqliteDirectory(db).list_accounts()) == 1


def test_account_names_are_escaped(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    """A quoted local part may hold <, > and & (RFC 5321 4.1.2 qtextSMTP)."""
    evil = '"<script>alert(1)</script>&"'
    status, _ = create(admin_client, evil)
    assert status == 302
    listing = admin_client.get(URL).get_data(as_text=True)
    detail = admin_client.get(f"{URL}{account_id(db, evil + '@' + DOMAIN)}"
                              ).get_data(as_text=True)
    for page in (listing, detail):
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in page
    status, page = create(admin_client, "<b>x</b>")       # refused, and echoed escaped
    assert status == 400
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_reset_password_and_revoke_app_passwords(admin_client: FlaskClient, settings: Settings,
                                                 db: sqlite3.Connection,
                                                 user_client: FlaskClient) -> None:
    assert user_client.get("/me/").status_code == 200
    store = AppPasswordStore(db, Passwords.from_settings(settings))
    store.create(USER, "phone")
    url = f"{URL}{account_id(db, USER)}/password"
    weak = post_form(admin_client, url, {"password": "short", "password2": "short"},
                     token_page=URL)
    assert weak.status_code == 400
    assert "at least 10 characters" in weak.get_data(as_text=True)
    response = post_form(admin_client, url, {"password": GOOD, "password2": GOOD,
                                             "revoke_app_passwords": "1"}, token_page=URL)
    assert response.status_code == 302
    stored = SqliteDirectory(db).password_hash(USER)
    assert stored is not None
    assert Passwords.from_settings(settings).verify(stored, GOOD).ok
    assert store.list(USER) == []
    assert user_client.get("/me/").status_code == 302     # the user's session ended
    assert last_audit(db) == ("account.password_reset", USER, {"app_passwords_revoked": "1"})


def test_quota_and_bounds(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    url = f"{URL}{account_id(db, USER)}/quota"
    assert post_form(admin_client, url, {"quota_mib": "1024"}, token_page=URL
                     ).status_code == 302
    assert SqliteDirectory(db).get_account(USER).quota_bytes == 1024 * MIB
    too_big = post_form(admin_client, url, {"quota_mib": str(2**40)}, token_page=URL)
    assert too_big.status_code == 400
    assert SqliteDirectory(db).get_account(USER).quota_bytes == 1024 * MIB
    page = admin_client.get(f"{URL}{account_id(db, USER)}").get_data(as_text=True)
    assert "1.0 GiB" in page


def test_disable_and_enable(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    url = f"{URL}{account_id(db, USER)}/enabled"
    assert post_form(admin_client, url, {"enabled": "0"}, token_page=URL).status_code == 302
    assert SqliteDirectory(db).password_hash(USER) is None      # no login while disabled
    assert last_audit(db)[:2] == ("account.disable", USER)
    assert "disabled" in admin_client.get(URL).get_data(as_text=True)
    assert post_form(admin_client, url, {"enabled": "1"}, token_page=URL).status_code == 302
    assert SqliteDirectory(db).password_hash(USER) is not None
    assert last_audit(db)[:2] == ("account.enable", USER)


def test_delete_needs_the_typed_address(admin_client: FlaskClient, settings: Settings,
                                        db: sqlite3.Connection) -> None:
    ident = account_id(db, USER)
    SqliteDirectory(db).add_alias("sales@example.test", "Alice@example.test")
    page = admin_client.get(f"{URL}{ident}/delete").get_data(as_text=True)
    assert "These aliases lead to this account" in page
    assert "sales@example.test" in page
    assert "kept" in page
    assert str(settings.data_dir) in page
    wrong = post_form(admin_client, f"{URL}{ident}/delete", {"confirm": "bob@example.test"})
    assert wrong.status_code == 400
    assert SqliteDirectory(db).list_accounts()
    response = post_form(admin_client, f"{URL}{ident}/delete", {"confirm": "ALICE@Example.Test"})
    assert response.status_code == 302
    assert SqliteDirectory(db).list_accounts() == []
    assert last_audit(db)[:2] == ("account.delete", USER)
    assert admin_client.get(f"{URL}{ident}").status_code == 404


def test_app_passwords_listed_and_revoked(admin_client: FlaskClient, settings: Settings,
                                          db: sqlite3.Connection) -> None:
    store = AppPasswordStore(db, Passwords.from_settings(settings))
    phone = store.create(USER, "<i>phone</i>")
    store.create(USER, "laptop")
    url = f"{URL}{account_id(db, USER)}"
    page = admin_client.get(url).get_data(as_text=True)
    assert "&lt;i&gt;phone&lt;/i&gt;" in page
    assert "laptop" in page
    assert phone.secret not in page
    response = post_form(admin_client, f"{url}/app-passwords/{phone.record.id}/revoke", {},
                         token_page=url)
    assert response.status_code == 302
    assert [p.label for p in store.list(USER)] == ["laptop"]
    assert last_audit(db) == ("account.app_password_revoke", USER, {"label": "<i>phone</i>"})
    again = post_form(admin_client, f"{url}/app-passwords/{phone.record.id}/revoke", {},
                      token_page=url)
    assert again.status_code == 404


def test_unknown_account_is_404(admin_client: FlaskClient) -> None:
    assert admin_client.get(f"{URL}999").status_code == 404
    token = form_token(admin_client.get(URL).data)
    assert admin_client.post(f"{URL}999/quota", data={"quota_mib": "1", "csrf_token": token}
                             ).status_code == 404


def test_permissions_and_csrf(admin_client: FlaskClient, user_client: FlaskClient,
                              db: sqlite3.Connection) -> None:
    ident = account_id(db, USER)
    assert user_client.get(URL).status_code == 403
    assert user_client.get(f"{URL}{ident}").status_code == 403
    token = form_token(user_client.get("/").data)
    assert user_client.post(f"{URL}{ident}/enabled", data={"enabled": "0", "csrf_token": token}
                            ).status_code == 403
    admin_client.get(URL)
    assert admin_client.post(f"{URL}{ident}/enabled", data={"enabled": "0"}).status_code == 400
    assert SqliteDirectory(db).get_account(USER).enabled


def test_thousand_accounts_list_in_pages(admin_client: FlaskClient,
                                         db: sqlite3.Connection) -> None:
    domain_id = db.execute("SELECT id FROM domains WHERE name = ?", (DOMAIN,)).fetchone()[0]
    db.executemany(
        "INSERT INTO accounts (domain_id, local_part, local_key, password_hash, quota_bytes, "
        "maildir, created_at) VALUES (?, ?, ?, 'x', 0, ?, 0)",
        [(domain_id, f"user{n:04d}", f"user{n:04d}", f"mail/{DOMAIN}/user{n:04d}")
         for n in range(1000)])
    admin_client.get(URL)                                  # warm templates
    started = time.perf_counter()
    first = admin_client.get(URL)
    elapsed = time.perf_counter() - started
    text = first.get_data(as_text=True)
    assert first.status_code == 200
    assert "1001 account(s)" in text
    assert "Page 1 of 11" in text
    assert text.count("/admin/accounts/") - text.count('href="/admin/accounts/?') >= 100
    assert "user0098@" in text
    assert "user0099@" not in text
    assert elapsed < 1.0, f"accounts list took {elapsed:.3f} s"
    last = admin_client.get(f"{URL}?page=11").get_data(as_text=True)
    assert "user0999@" in last
    assert "Page 11 of 11" in last
    found = admin_client.get(f"{URL}?q=USER0500").get_data(as_text=True)
    assert "user0500@" in found
    assert "1 account(s)" in found


def _insert_accounts(db: sqlite3.Connection, domain: str, count: int,
                     prefix: str = "user") -> None:
    domain_id = db.execute("SELECT id FROM domains WHERE name = ?", (domain,)).fetchone()[0]
    db.executemany(
        "INSERT INTO accounts (domain_id, local_part, local_key, password_hash, quota_bytes, "
        "maildir, created_at) VALUES (?, ?, ?, 'x', 0, ?, 0)",
        [(domain_id, f"{prefix}{n:04d}", f"{prefix}{n:04d}", f"mail/{domain}/{prefix}{n:04d}")
         for n in range(count)])
    db.commit()


def _listed(page: str) -> list[str]:
    return re.findall(r'<a href="/admin/accounts/\d+">([^<]+)</a>', page)


def test_paging_at_the_page_edges(admin_client: FlaskClient, db: sqlite3.Connection) -> None:
    _insert_accounts(db, DOMAIN, 99)                # with USER (alice@): exactly one page
    one = admin_client.get(URL).get_data(as_text=True)
    assert len(_listed(one)) == 100
    assert "100 account(s)" in one
    assert 'rel="next"' not in one
    assert "Page 1 of" not in one
    _insert_accounts(db, DOMAIN, 1, prefix="zz")    # 101: a second page of one row
    first = admin_client.get(URL).get_data(as_text=True)
    assert "Page 1 of 2" in first
    assert _listed(first)[-1] == "user0098@example.test"
    second = admin_client.get(f"{URL}?page=2").get_data(as_text=True)
    assert _listed(second) == ["zz0000@example.test"]
    assert 'rel="prev"' in second
    assert 'rel="next"' not in second
    for asked, shown in (("99", 2), ("0", 1), ("-3", 1), ("x", 1), ("9" * 40, 2)):
        page = admin_client.get(f"{URL}?page={asked}").get_data(as_text=True)
        assert f"Page {shown} of 2" in page, asked


def test_filter_and_domain_in_sql_keep_their_paging(admin_client: FlaskClient,
                                                    db: sqlite3.Connection) -> None:
    directory = SqliteDirectory(db)
    directory.add_domain("other.test")
    _insert_accounts(db, DOMAIN, 150)
    _insert_accounts(db, "other.test", 120)
    page = admin_client.get(f"{URL}?q=USER01&domain=other.test").get_data(as_text=True)
    assert _listed(page) == [f"user{n:04d}@other.test" for n in range(100, 120)]
    assert "20 account(s)" in page
    wide = admin_client.get(f"{URL}?q=user&domain=other.test").get_data(as_text=True)
    assert "120 account(s)" in wide
    assert "Page 1 of 2" in wide
    assert "q=user" in wide
    assert "domain=other.test" in wide
    last = admin_client.get(f"{URL}?q=user&domain=other.test&page=2").get_data(as_text=True)
    assert _listed(last) == [f"user{n:04d}@other.test" for n in range(100, 120)]
    everything = admin_client.get(f"{URL}?q=user").get_data(as_text=True)
    assert "270 account(s)" in everything
    assert "Page 1 of 3" in everything
    nothing = admin_client.get(f"{URL}?q=nobody").get_data(as_text=True)
    assert "0 account(s)" in nothing
    assert _listed(nothing) == []
    unknown = admin_client.get(f"{URL}?domain=nowhere.test").get_data(as_text=True)
    assert "0 account(s)" in unknown
