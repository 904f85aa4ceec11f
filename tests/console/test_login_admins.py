"""`/account`: an admin changes their password, turns TOTP on and off, adds and removes
other admins; every change is audited and ends the other sessions it should."""

from __future__ import annotations

import sqlite3

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from appliance.storage.db import open_database
from webui import admins

from .conftest import ADMIN, ADMIN_PASSWORD, log_in, post_form

NEW_PASSWORD = "Brand-New-Pass-2026"


def db(app: Flask) -> sqlite3.Connection:
    return open_database(app.config["MAILSTEAD_SETTINGS"].data_dir)


def audit_actions(app: Flask) -> list[str]:
    return [r[0] for r in db(app).execute("SELECT action FROM audit_log ORDER BY id")]


def test_account_page_is_for_admins(admin_client: FlaskClient, user_client: FlaskClient,
                                    client: FlaskClient) -> None:
    assert admin_client.get("/account").status_code == 200
    assert user_client.get("/account").status_code == 403
    assert client.get("/account").headers["Location"] == "/login?next=/account"


def test_change_password(admin_client: FlaskClient, app: Flask) -> None:
    other = app.test_client()
    assert log_in(other, ADMIN, ADMIN_PASSWORD).status_code == 302
    wrong = post_form(admin_client, "/account/password",
                      {"current": "not it at all", "new": NEW_PASSWORD, "new2": NEW_PASSWORD},
                      token_page="/account")
    assert wrong.status_code == 400
    weak = post_form(admin_client, "/account/password",
                     {"current": ADMIN_PASSWORD, "new": "weakweakweak", "new2": "weakweakweak"},
                     token_page="/account")
    assert weak.status_code == 400
    ok = post_form(admin_client, "/account/password",
                   {"current": ADMIN_PASSWORD, "new": NEW_PASSWORD, "new2": NEW_PASSWORD},
                   token_page="/account")
    assert ok.headers["Location"] == "/account"
    assert admin_client.get("/").status_code == 200             # this session goes on
    assert other.get("/").headers["Location"] == "/login"        # the other one ended
    assert log_in(app.test_client(), ADMIN, ADMIN_PASSWORD).status_code == 401
    assert log_in(app.test_client(), ADMIN, NEW_PASSWORD).status_code == 302
    assert "admin.password_change" in audit_actions(app)


def test_totp_on_and_off_from_the_account_page(admin_client: FlaskClient, app: Flask) -> None:
    page = admin_client.get("/account").data
    assert b"Off." in page
    enrol = admin_client.get("/setup/totp").data.decode()
    assert 'class="steps"' not in enrol                       # not inside the wizard
    secret = enrol.split('class="secret">')[1].split("<")[0]
    done = post_form(admin_client, "/setup/totp", {"action": "enable",
                                                   "code": pyotp.TOTP(secret).now()})
    assert done.headers["Location"] == "/account"
    assert b"On." in admin_client.get("/account").data
    assert log_in(app.test_client(), ADMIN, ADMIN_PASSWORD).headers["Location"] == "/login/totp"
    off = post_form(admin_client, "/account/totp/disable", {"current": ADMIN_PASSWORD},
                    token_page="/account")
    assert off.headers["Location"] == "/account"
    found = admins.get(db(app), ADMIN)
    assert found is not None
    assert found.totp_secret is None
    assert {"admin.totp_enable", "admin.totp_disable"} <= set(audit_actions(app))


def test_add_and_remove_admins(admin_client: FlaskClient, app: Flask) -> None:
    bad = post_form(admin_client, "/account/admins", {"username": "<b>x</b>",
                                                      "password": NEW_PASSWORD},
                    token_page="/account")
    assert bad.status_code == 400
    assert b"<b>x</b>" not in bad.data
    added = post_form(admin_client, "/account/admins", {"username": "Second",
                                                        "password": NEW_PASSWORD},
                      token_page="/account")
    assert added.headers["Location"] == "/account"
    duplicate = post_form(admin_client, "/account/admins", {"username": "second",
                                                            "password": NEW_PASSWORD},
                          token_page="/account")
    assert duplicate.status_code == 400
    assert b"already exists" in duplicate.data
    second = app.test_client()
    assert log_in(second, "second", NEW_PASSWORD).status_code == 302
    assert second.get("/").status_code == 200
    myself = post_form(admin_client, f"/account/admins/{ADMIN}/delete", {},
                       token_page="/account")
    assert myself.status_code == 400
    removed = post_form(admin_client, "/account/admins/second/delete", {},
                        token_page="/account")
    assert removed.headers["Location"] == "/account"
    assert second.get("/").headers["Location"] == "/login"
    assert post_form(admin_client, "/account/admins/nobody/delete", {},
                     token_page="/account").status_code == 404
    changes = [a for a in audit_actions(app) if a in ("admin.create", "admin.delete")]
    assert changes == ["admin.create", "admin.delete"]


def test_audit_log_page(admin_client: FlaskClient, user_client: FlaskClient) -> None:
    post_form(admin_client, "/account/admins", {"username": "third", "password": NEW_PASSWORD},
              token_page="/account")
    page = admin_client.get("/account/audit")
    assert page.status_code == 200
    assert b"admin.create" in page.data
    assert b"third" in page.data
    assert NEW_PASSWORD.encode() not in page.data
    assert user_client.get("/account/audit").status_code == 403
    assert admin_client.get("/account/audit?page=-5").status_code == 200
