"""`/me`: a mail user's self-service pages — who may see them, CSRF, validation, escaping,
and that what they store is what the engine and the login use."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.auth.passwords import Passwords
from appliance.auth.verify import AccountVerifier
from appliance.settings import Settings
from appliance.storage.account_settings import (
    MAX_BODY_LENGTH,
    MAX_FORWARD_TARGETS,
    AccountSettings,
    Forwarding,
    Vacation,
)
from appliance.storage.account_totp import AccountTotp
from appliance.storage.app_passwords import MAX_APP_PASSWORDS, MAX_LABEL_LENGTH, AppPasswordStore
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from webui.blueprints.self_service import MAX_CODE_FAILURES

from .conftest import USER, USER_PASSWORD, add_user, form_token, log_in, post_form

NEW_PASSWORD = "a brand new secret 7"
XSS = '<script>alert("x")</script>'
SECRET = re.compile(r'id="new-app-password">([a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4})<')
PAGES = ["/me/", "/me/password", "/me/app-passwords", "/me/two-factor", "/me/vacation",
         "/me/forwarding"]
POSTS = ["/me/password", "/me/app-passwords", "/me/app-passwords/1/revoke",
         "/me/two-factor/start", "/me/two-factor/confirm", "/me/two-factor/disable",
         "/me/vacation", "/me/forwarding"]


@pytest.fixture
def conn(settings: Settings, app: Flask) -> Iterator[sqlite3.Connection]:
    connection = open_database(settings.data_dir)
    yield connection
    connection.close()


def passwords(settings: Settings) -> Passwords:
    return Passwords.from_settings(settings)


def audit_actions(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute("SELECT action, target, details FROM audit_log WHERE action LIKE "
                        "'self.%' ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]


def create_app_password(client: FlaskClient, label: str) -> str:
    response = post_form(client, "/me/app-passwords", {"label": label})
    assert response.status_code == 200, response.data
    found = SECRET.search(response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)
    return found.group(1)


# -- who may see the pages -----------------------------------------------------------------

@pytest.mark.parametrize("url", PAGES)
def test_visitors_are_sent_to_the_login(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("url", PAGES)
def test_admins_get_403(admin_client: FlaskClient, url: str) -> None:
    assert admin_client.get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_mail_users_see_their_pages(user_client: FlaskClient, url: str) -> None:
    response = user_client.get(url)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Your account" in page
    assert url == "/me/" or 'href="/me/">&larr; Your account' in page


def test_the_user_home_links_here(user_client: FlaskClient) -> None:
    page = user_client.get("/").get_data(as_text=True)
    assert 'href="/me/"' in page


@pytest.mark.parametrize("url", POSTS)
def test_every_form_needs_the_csrf_token(user_client: FlaskClient, url: str,
                                         conn: sqlite3.Connection) -> None:
    response = user_client.post(url, data={"label": "x", "old_password": USER_PASSWORD,
                                           "password": NEW_PASSWORD, "password2": NEW_PASSWORD,
                                           "targets": "a@example.org", "enabled": "1",
                                           "body": "b"})
    assert response.status_code == 400
    assert audit_actions(conn) == []
    assert AppPasswordStore(conn, Passwords(1, 8192, 1)).list(USER) == []


# -- password ------------------------------------------------------------------------------

def test_change_password(app: Flask, user_client: FlaskClient, conn: sqlite3.Connection,
                         settings: Settings) -> None:
    other_browser = app.test_client()
    assert log_in(other_browser, USER, USER_PASSWORD).status_code == 302
    assert other_browser.get("/me/").status_code == 200
    response = post_form(user_client, "/me/password", {
        "old_password": USER_PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    verifier = AccountVerifier(SqliteDirectory(conn), passwords(settings))
    assert verifier.verify(USER, NEW_PASSWORD)
    assert not verifier.verify(USER, USER_PASSWORD)
    fresh = app.test_client()
    assert log_in(fresh, USER, NEW_PASSWORD).status_code == 302
    assert user_client.get("/me/").status_code == 200         # the changing session stays
    assert other_browser.get("/me/").status_code == 302       # every other one ends
    assert audit_actions(conn) == [("self.password_change", USER,
                                    '{"app_passwords_revoked": "0"}')]


@pytest.mark.parametrize(("form", "message"), [
    ({"old_password": "wrong password 1", "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
     "current password is not right"),
    ({"old_password": USER_PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
     "the two passwords differ"),
    ({"old_password": USER_PASSWORD, "password": "short", "password2": "short"},
     "too short"),
    ({"old_password": USER_PASSWORD, "password": "aaaaaaaaaaaa", "password2": "aaaaaaaaaaaa"},
     "too simple"),
    ({"old_password": USER_PASSWORD, "password": "alice is great", "password2": "alice is great"},
     "must not contain"),
    ({"old_password": USER_PASSWORD, "password": USER_PASSWORD, "password2": USER_PASSWORD},
     "the same as the current"),
    ({"old_password": USER_PASSWORD, "password": "x" * 1025, "password2": "x" * 1025},
     "enter your current password"),
    ({"old_password": "", "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
     "enter your current password"),
])
def test_refused_password_changes(user_client: FlaskClient, conn: sqlite3.Connection,
                                  settings: Settings, form: dict[str, str],
                                  message: str) -> None:
    response = post_form(user_client, "/me/password", form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert AccountVerifier(SqliteDirectory(conn), passwords(settings)).verify(USER, USER_PASSWORD)
    assert audit_actions(conn) == []


def test_change_password_can_revoke_every_app_password(
        user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    create_app_password(user_client, "phone")
    create_app_password(user_client, "laptop")
    response = post_form(user_client, "/me/password", {
        "old_password": USER_PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD,
        "revoke_app": "1"})
    assert response.status_code == 302
    assert conn.execute("SELECT count(*) FROM app_passwords").fetchone()[0] == 0
    assert "2 app password(s) revoked" in user_client.get("/me/").get_data(as_text=True)


# -- app passwords -------------------------------------------------------------------------

def test_app_password_is_shown_once_and_works_for_mail_only(
        app: Flask, user_client: FlaskClient, conn: sqlite3.Connection,
        settings: Settings) -> None:
    response = post_form(user_client, "/me/app-passwords", {"label": "Phone"})
    assert response.headers["Cache-Control"] == "no-store"
    found = SECRET.search(response.get_data(as_text=True))
    assert found
    secret = found.group(1)
    listing = user_client.get("/me/app-passwords").get_data(as_text=True)
    assert "Phone" in listing
    assert secret not in listing
    mail = AccountVerifier(SqliteDirectory(conn), passwords(settings),
                           AppPasswordStore(conn, passwords(settings)))
    assert mail.verify(USER, secret)
    assert log_in(app.test_client(), USER, secret).status_code == 401   # not the console
    actions = audit_actions(conn)
    assert actions == [("self.app_password_create", USER, '{"label": "Phone"}')]
    assert secret not in str(actions)


def test_revoke_an_app_password(user_client: FlaskClient, conn: sqlite3.Connection,
                                settings: Settings) -> None:
    secret = create_app_password(user_client, "phone")
    store = AppPasswordStore(conn, passwords(settings))
    [record] = store.list(USER)
    response = post_form(user_client, f"/me/app-passwords/{record.id}/revoke", {},
                         token_page="/me/app-passwords")
    assert response.status_code == 302
    assert store.list(USER) == []
    mail = AccountVerifier(SqliteDirectory(conn), passwords(settings), store)
    assert not mail.verify(USER, secret)
    assert audit_actions(conn)[-1] == ("self.app_password_revoke", USER, '{"label": "phone"}')


def test_one_user_cannot_revoke_anothers(app: Flask, user_client: FlaskClient,
                                         conn: sqlite3.Connection, settings: Settings) -> None:
    add_user(settings, "bob@example.test", "bob mail password 1")
    store = AppPasswordStore(conn, passwords(settings))
    bobs = store.create("bob@example.test", "bob's phone").record
    response = post_form(user_client, f"/me/app-passwords/{bobs.id}/revoke", {},
                         token_page="/me/app-passwords")
    assert response.status_code == 404
    assert store.list("bob@example.test") == [bobs]


@pytest.mark.parametrize(("label", "message"), [
    ("", "The name is required"), ("x" * (MAX_LABEL_LENGTH + 1), "too long"),
    ("a\x00b", "control characters")])
def test_bad_labels(user_client: FlaskClient, conn: sqlite3.Connection, label: str,
                    message: str) -> None:
    response = post_form(user_client, "/me/app-passwords", {"label": label})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert conn.execute("SELECT count(*) FROM app_passwords").fetchone()[0] == 0


def test_labels_are_escaped(user_client: FlaskClient) -> None:
    create_app_password(user_client, XSS)
    page = user_client.get("/me/app-passwords").get_data(as_text=True)
    assert XSS not in page
    assert "&lt;script&gt;" in page


def test_at_most_max_app_passwords(user_client: FlaskClient, conn: sqlite3.Connection,
                                   settings: Settings) -> None:
    store = AppPasswordStore(conn, passwords(settings))
    for n in range(MAX_APP_PASSWORDS):
        store.create(USER, f"device {n}")
    page = user_client.get("/me/app-passwords").get_data(as_text=True)
    assert "the most an account may have" in page
    response = post_form(user_client, "/me/app-passwords", {"label": "one more"},
                         token_page="/me/password")
    assert response.status_code == 400
    assert f"at most {MAX_APP_PASSWORDS}" in response.get_data(as_text=True)


# -- two-factor login ----------------------------------------------------------------------

def enrol(client: FlaskClient) -> str:
    response = post_form(client, "/me/two-factor/start", {}, token_page="/me/two-factor")
    assert response.status_code == 302
    page = client.get("/me/two-factor")
    assert page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in text
    found = re.search(r'<code class="secret">([A-Z2-7]+)</code>', text)
    assert found
    return found.group(1)


def test_enrol_confirm_and_disable_totp(user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    secret = enrol(user_client)
    totp = AccountTotp(conn)
    assert totp.pending_secret(USER) == secret
    assert not totp.enabled(USER)
    code = pyotp.TOTP(secret).now()
    response = post_form(user_client, "/me/two-factor/confirm", {"code": code},
                         token_page="/me/two-factor")
    assert response.status_code == 302
    assert totp.enabled(USER)
    assert totp.totp_secret(USER) == secret
    assert "Turn two-factor login off" in user_client.get("/me/two-factor").get_data(as_text=True)
    response = post_form(user_client, "/me/two-factor/disable", {"code": code},
                         token_page="/me/two-factor")                  # replayed code
    assert response.status_code == 400
    assert totp.enabled(USER)
    later = pyotp.TOTP(secret).at(time.time() + 30)
    response = post_form(user_client, "/me/two-factor/disable", {"code": later},
                         token_page="/me/two-factor")
    assert response.status_code == 302
    assert not totp.enabled(USER)
    assert [a[0] for a in audit_actions(conn)] == ["self.totp_enable", "self.totp_disable"]
    assert secret not in str(audit_actions(conn))


def test_a_wrong_code_does_not_enable(user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    secret = enrol(user_client)
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    response = post_form(user_client, "/me/two-factor/confirm", {"code": wrong},
                         token_page="/me/two-factor")
    assert response.status_code == 400
    assert not AccountTotp(conn).enabled(USER)


def test_wrong_codes_pause_the_form(user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    secret = enrol(user_client)
    token = form_token(user_client.get("/me/two-factor").data)
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 1) % 10**6:06d}"
    for _ in range(MAX_CODE_FAILURES):
        response = user_client.post("/me/two-factor/confirm",
                                    data={"code": wrong, "csrf_token": token})
        assert response.status_code == 400
    response = user_client.post("/me/two-factor/confirm",
                                data={"code": pyotp.TOTP(secret).now(), "csrf_token": token})
    assert response.status_code == 429                 # even the right code waits
    assert not AccountTotp(conn).enabled(USER)


def test_cancel_a_pending_enrolment(user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    enrol(user_client)
    response = post_form(user_client, "/me/two-factor/disable", {}, token_page="/me/two-factor")
    assert response.status_code == 302
    assert AccountTotp(conn).pending_secret(USER) is None


# -- vacation ------------------------------------------------------------------------------

def test_vacation_round_trip(user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    response = post_form(user_client, "/me/vacation", {
        "enabled": "1", "subject": "Away", "body": "Back on Monday.\r\nAlice",
        "start": "2026-07-01", "end": "2026-07-14"})
    assert response.status_code == 302
    stored = AccountSettings(conn).vacation(USER)
    assert stored.enabled
    assert stored.subject == "Away"
    assert stored.body == "Back on Monday.\nAlice"
    assert (str(stored.start), str(stored.end)) == ("2026-07-01", "2026-07-14")
    page = user_client.get("/me/vacation").get_data(as_text=True)
    assert 'value="2026-07-01"' in page
    assert "Back on Monday." in page
    assert " checked" in page
    response = post_form(user_client, "/me/vacation", {"subject": "Away", "body": ""})
    assert response.status_code == 302
    assert not AccountSettings(conn).vacation(USER).enabled


@pytest.mark.parametrize(("form", "message"), [
    ({"enabled": "1", "subject": "Away", "body": ""}, "write the message"),
    ({"enabled": "1", "subject": "Away", "body": "b", "start": "2026-13-01"}, "must be a date"),
    ({"enabled": "1", "subject": "Away", "body": "b", "end": "tomorrow"}, "must be a date"),
    ({"enabled": "1", "subject": "Away", "body": "b", "start": "2026-07-02",
      "end": "2026-07-01"}, "before the first day"),
    ({"enabled": "1", "subject": "Away\r\nBcc: x@example.org", "body": "b"}, "one line"),
    ({"enabled": "1", "subject": "x" * 500, "body": "b"}, "subject is too long"),
    ({"enabled": "1", "subject": "Away", "body": "b" * (MAX_BODY_LENGTH + 1)}, "too long"),
])
def test_refused_vacations(user_client: FlaskClient, conn: sqlite3.Connection,
                           form: dict[str, str], message: str) -> None:
    response = post_form(user_client, "/me/vacation", form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert AccountSettings(conn).vacation(USER) == Vacation()


def test_vacation_text_is_escaped(user_client: FlaskClient) -> None:
    assert post_form(user_client, "/me/vacation", {
        "subject": XSS, "body": XSS}).status_code == 302
    page = user_client.get("/me/vacation").get_data(as_text=True)
    assert XSS not in page
    assert page.count("&lt;script&gt;") == 2


# -- forwarding ----------------------------------------------------------------------------

def test_forwarding_round_trip(user_client: FlaskClient, conn: sqlite3.Connection) -> None:
    response = post_form(user_client, "/me/forwarding", {
        "targets": "bob@example.org\r\ncarol@example.org, bob@example.org"})
    assert response.status_code == 302
    stored = AccountSettings(conn).forwarding(USER)
    assert stored == Forwarding(("bob@example.org", "carol@example.org"), keep_copy=False)
    response = post_form(user_client, "/me/forwarding", {"targets": "bob@example.org",
                                                         "keep_copy": "1"})
    assert AccountSettings(conn).forwarding(USER) == Forwarding(("bob@example.org",), True)
    assert " checked" in user_client.get("/me/forwarding").get_data(as_text=True)
    response = post_form(user_client, "/me/forwarding", {"targets": ""})
    assert response.status_code == 302
    assert AccountSettings(conn).forwarding(USER).targets == ()
    assert audit_actions(conn)[0] == ("self.forwarding", USER, '{"targets": '
                                      '"bob@example.org, carol@example.org", "keep_copy": "False"}')


@pytest.mark.parametrize(("targets", "message"), [
    ("not-an-address", "not a mail address"),
    (USER.upper(), "forward to other addresses"),
    ("\n".join(f"u{n}@example.org" for n in range(MAX_FORWARD_TARGETS + 1)),
     f"at most {MAX_FORWARD_TARGETS}"),
    ("a@example.org\n" * 2000, "too long"),
])
def test_refused_forwarding(user_client: FlaskClient, conn: sqlite3.Connection, targets: str,
                            message: str) -> None:
    response = post_form(user_client, "/me/forwarding", {"targets": targets})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert AccountSettings(conn).forwarding(USER) == Forwarding()


def test_a_refused_target_is_echoed_escaped(user_client: FlaskClient) -> None:
    response = post_form(user_client, "/me/forwarding", {"targets": XSS})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert XSS not in page
    assert "&lt;script&gt;" in page


def test_overview_shows_what_is_set(user_client: FlaskClient, conn: sqlite3.Connection,
                                    settings: Settings) -> None:
    AccountSettings(conn).set_forwarding(USER, Forwarding(("bob@example.org",), False))
    AccountSettings(conn).set_vacation(USER, Vacation(True, "Away", "Gone"))
    AppPasswordStore(conn, passwords(settings)).create(USER, "phone")
    page = user_client.get("/me/").get_data(as_text=True)
    assert "no copy kept" in page
    assert re.search(r"Vacation reply</h2>\s*<p class=\"figure\">On", page)
    assert re.search(r"App passwords</h2>\s*<p class=\"figure\">1<", page)
