"""Logins: admins (password, then TOTP when on), mail users, lockouts, session fixation,
idle timeout, logout, and who may see what."""

from __future__ import annotations

import hashlib
import time

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from appliance.auth.passwords import Passwords
from appliance.settings import Settings
from appliance.storage.account_totp import AccountTotp
from appliance.storage.app_passwords import AppPasswordStore
from appliance.storage.db import open_database
from webui.sessions import COOKIE_NAME

from .conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    USER,
    USER_PASSWORD,
    add_admin,
    close_app,
    log_in,
    make_app,
    post_form,
)


def session_id(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE_NAME)
    return cookie.value if cookie is not None else None


def test_admin_login_reaches_the_dashboard(admin_client: FlaskClient) -> None:
    page = admin_client.get("/")
    assert page.status_code == 200
    assert b"<h1>Dashboard</h1>" in page.data
    assert b"example.test" in page.data


def test_visitors_are_sent_to_login(client: FlaskClient) -> None:
    response = client.get("/setup/host")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/setup/host"
    assert client.get("/").headers["Location"] == "/login"


def test_login_returns_to_the_page_asked_for(client: FlaskClient) -> None:
    response = post_form(client, "/login", {"username": ADMIN, "password": ADMIN_PASSWORD,
                                            "next": "/setup/host"})
    assert response.headers["Location"] == "/setup/host"


def test_no_open_redirect_after_login(client: FlaskClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        fresh = client.application.test_client()
        response = post_form(fresh, "/login", {"username": ADMIN, "password": ADMIN_PASSWORD,
                                               "next": target})
        assert response.headers["Location"] == "/", target


def test_wrong_password_then_lockout(client: FlaskClient, settings: Settings) -> None:
    limit = settings.get_int("auth.max_failures")
    for _ in range(limit):
        response = log_in(client, ADMIN, "wrong password 123")
        assert response.status_code == 401
        assert b"Wrong username or password" in response.data
    locked = log_in(client, ADMIN, ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed attempts" in locked.data
    assert client.get("/").headers["Location"] == "/login"


def test_unknown_admin_and_unknown_user_look_the_same(client: FlaskClient) -> None:
    for name in ("nobody", "nobody@example.test", "x y z", "admin@console.invalid"):
        response = log_in(client, name, ADMIN_PASSWORD)
        assert response.status_code == 401, name
        assert b"Wrong username or password" in response.data


def test_session_id_changes_at_login(client: FlaskClient, app: Flask) -> None:
    """Session fixation: the id a visitor had before login is dead after it."""
    client.get("/login")
    log_in(client, ADMIN, "wrong password 123")
    before = session_id(client)
    assert before is not None
    response = log_in(client, ADMIN, ADMIN_PASSWORD)
    assert response.status_code == 302
    after = session_id(client)
    assert after is not None
    assert after != before
    attacker = app.test_client()
    attacker.set_cookie(COOKIE_NAME, before)
    assert attacker.get("/").headers["Location"] == "/login"
    rows = open_database(app.config["MAILSTEAD_SETTINGS"].data_dir).execute(
        "SELECT id_hash FROM console_sessions").fetchall()
    stored = {r[0] for r in rows}
    assert hashlib.sha256(after.encode()).hexdigest() in stored
    assert after not in stored
    assert hashlib.sha256(before.encode()).hexdigest() not in stored


def test_cookie_flags(client: FlaskClient) -> None:
    response = client.get("/login")
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Expires" not in header


def test_cookie_is_secure_over_https(settings: Settings) -> None:
    add_admin(settings)
    app = make_app(settings)
    try:
        client = app.test_client()
        response = client.get("/login", base_url="https://localhost")
        assert "; Secure" in response.headers["Set-Cookie"]
    finally:
        close_app(app)


def test_logout_ends_the_session(admin_client: FlaskClient, app: Flask) -> None:
    old = session_id(admin_client)
    response = post_form(admin_client, "/logout", {}, token_page="/")
    assert response.headers["Location"] == "/login"
    assert admin_client.get("/").headers["Location"] == "/login"
    replay = app.test_client()
    assert old is not None
    replay.set_cookie(COOKIE_NAME, old)
    assert replay.get("/").headers["Location"] == "/login"


def test_idle_session_expires(admin_client: FlaskClient, app: Flask) -> None:
    idle = 900
    conn = open_database(app.config["MAILSTEAD_SETTINGS"].data_dir)
    conn.execute("UPDATE console_sessions SET last_seen = ?", (int(time.time()) - idle + 60,))
    assert admin_client.get("/").status_code == 200           # still within the timeout
    conn.execute("UPDATE console_sessions SET last_seen = ?", (int(time.time()) - idle - 1,))
    assert admin_client.get("/").headers["Location"] == "/login"


def test_idle_timeout_is_a_setting(settings: Settings) -> None:
    add_admin(settings)
    app = make_app(settings, **{"console.idle_timeout": 1})
    try:
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        assert client.get("/").status_code == 200
        time.sleep(2.1)
        assert client.get("/").headers["Location"] == "/login"
    finally:
        close_app(app)


def test_mail_user_login_and_home(user_client: FlaskClient) -> None:
    page = user_client.get("/")
    assert page.status_code == 200
    assert USER.encode() in page.data
    assert b"Dashboard" not in page.data


def test_mail_user_gets_403_on_admin_pages(user_client: FlaskClient) -> None:
    for path in ("/setup/host", "/setup/timezone", "/setup/tls", "/setup/dkim", "/setup/done"):
        assert user_client.get(path).status_code == 403, path
    response = post_form(user_client, "/setup/host", {"hostname": "a.b", "domain": "b.c"},
                         token_page="/")
    assert response.status_code == 403


def test_disabled_user_is_logged_out(user_client: FlaskClient, app: Flask) -> None:
    conn = open_database(app.config["MAILSTEAD_SETTINGS"].data_dir)
    conn.execute("UPDATE accounts SET enabled = 0")
    assert user_client.get("/").headers["Location"] == "/login"
    assert log_in(app.test_client(), USER, USER_PASSWORD).status_code == 401


def test_totp_login(settings: Settings) -> None:
    secret = pyotp.random_base32()
    add_admin(settings, totp_secret=secret)
    app = make_app(settings)
    try:
        client = app.test_client()
        response = log_in(client, ADMIN, ADMIN_PASSWORD)
        assert response.headers["Location"] == "/login/totp"
        assert client.get("/").headers["Location"] == "/login"     # not logged in yet
        wrong = post_form(client, "/login/totp", {"code": "123456"})
        assert wrong.status_code == 401
        code = pyotp.TOTP(secret).now()
        assert post_form(client, "/login/totp", {"code": code}).headers["Location"] == "/"
        assert client.get("/").status_code == 200
        # the same code cannot be used twice (RFC 6238 5.2)
        again = app.test_client()
        log_in(again, ADMIN, ADMIN_PASSWORD)
        assert post_form(again, "/login/totp", {"code": code}).status_code == 401
    finally:
        close_app(app)


def test_totp_page_needs_the_password_first(client: FlaskClient) -> None:
    assert client.get("/login/totp").headers["Location"] == "/login"


def test_mail_user_with_totp_is_asked_for_a_code(app: Flask) -> None:
    conn = open_database(app.config["MAILSTEAD_SETTINGS"].data_dir)
    totp = AccountTotp(conn)
    secret = totp.begin(USER)
    assert totp.confirm(USER, pyotp.TOTP(secret).at(time.time() - 30))
    client = app.test_client()
    assert log_in(client, USER, USER_PASSWORD).headers["Location"] == "/login/totp"
    assert client.get("/").headers["Location"] == "/login"
    assert post_form(client, "/login/totp", {"code": "000000"}).status_code == 401
    response = post_form(client, "/login/totp", {"code": pyotp.TOTP(secret).now()})
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert USER.encode() in page.data


def test_app_password_does_not_open_the_console(app: Flask) -> None:
    """App passwords are for mail clients: they would bypass the console's second factor."""
    conn = open_database(app.config["MAILSTEAD_SETTINGS"].data_dir)
    settings = app.config["MAILSTEAD_SETTINGS"]
    created = AppPasswordStore(conn, Passwords.from_settings(settings)).create(USER, "phone")
    assert log_in(app.test_client(), USER, created.secret).status_code == 401
    assert log_in(app.test_client(), USER, USER_PASSWORD).status_code == 302
