"""Security policy: headers on every response, CSRF, allowed networks, HTTPS, escaping,
and nothing secret in logs or pages."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import Settings
from webui import security

from .conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    add_admin,
    close_app,
    console_settings,
    form_token,
    log_in,
    make_app,
    post_form,
)

XSS = '<script>alert("x")</script>'


@pytest.mark.parametrize("path", ["/login", "/", "/no-such-page", "/static/console.css",
                                  "/healthz", "/setup"])
def test_headers_on_every_response(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers       # plain HTTP (dev)


def test_pages_are_not_cached_and_hsts_over_https(client: FlaskClient) -> None:
    page = client.get("/login", base_url="https://localhost")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert page.headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/console.css").headers.get("Cache-Control", "")


def test_headers_on_error_pages(admin_client: FlaskClient, user_client: FlaskClient) -> None:
    forbidden = user_client.get("/setup/host")
    assert forbidden.status_code == 403
    assert forbidden.headers["X-Frame-Options"] == "DENY"
    assert admin_client.get("/nothing").status_code == 404


def test_no_inline_script_or_style_in_pages(admin_client: FlaskClient) -> None:
    for path in ("/", "/setup/totp", "/setup/host", "/setup/timezone", "/setup/tls"):
        html = admin_client.get(path).data
        assert b"<script" not in html, path
        assert b"style=" not in html, path
        for attribute in (b'src="', b'href="', b"url("):    # no external asset (text such
            assert attribute + b"http" not in html, path   # as the ACME CA's URL is fine)
            assert attribute + b"//" not in html, path


@pytest.mark.parametrize(("url", "token_page"), [
    ("/login", "/login"), ("/logout", "/"), ("/setup/host", "/setup/host"),
    ("/setup/totp", "/setup/totp"), ("/setup/dkim", "/setup/dkim")])
def test_missing_or_wrong_csrf_token_is_400(admin_client: FlaskClient, url: str,
                                            token_page: str) -> None:
    admin_client.get(token_page)
    assert admin_client.post(url, data={"username": "a", "password": "b"}).status_code == 400
    wrong = admin_client.post(url, data={"csrf_token": "forged"})
    assert wrong.status_code == 400
    assert b"CSRF" in wrong.data
    assert admin_client.get("/").status_code == 200          # still logged in


def test_csrf_token_of_another_session_is_refused(app: Flask) -> None:
    attacker, victim = app.test_client(), app.test_client()
    token = form_token(attacker.get("/login").data)
    victim.get("/login")
    response = victim.post("/login", data={"csrf_token": token, "username": ADMIN,
                                           "password": ADMIN_PASSWORD})
    assert response.status_code == 400


def test_csrf_token_in_header_is_accepted(admin_client: FlaskClient) -> None:
    token = form_token(admin_client.get("/").data)
    response = admin_client.post("/logout", headers={"X-CSRF-Token": token})
    assert response.headers["Location"] == "/login"


def test_clients_outside_the_lan_get_403(app: Flask) -> None:
    outsider = app.test_client()
    outsider.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    assert outsider.get("/login").status_code == 403
    assert outsider.get("/login", base_url="https://localhost").status_code == 403


def test_allowed_networks() -> None:
    allowed = "127.0.0.0/8, ::1, 192.168.0.0/16, fc00::/7"
    assert security.client_allowed("192.168.1.20", allowed)
    assert security.client_allowed("::ffff:127.0.0.1", allowed)
    assert security.client_allowed("fd00::5", allowed)
    assert not security.client_allowed("8.8.8.8", allowed)
    assert not security.client_allowed("2001:db8::1", allowed)
    assert not security.client_allowed("not an address", allowed)


def test_plain_http_from_the_lan_is_refused_and_https_is_served(app: Flask) -> None:
    lan = app.test_client()
    lan.environ_base["REMOTE_ADDR"] = "192.168.1.20"
    moved = lan.get("/login?next=/admin", headers={"Host": "mailstead.lan"})
    assert moved.status_code == 308                         # a typed http:// URL goes on
    assert moved.headers["Location"] == "https://mailstead.lan/login?next=/admin"
    v6 = lan.get("/", headers={"Host": "[fd00::1]:80"})
    assert v6.headers["Location"] == "https://[fd00::1]/"
    refused = lan.post("/login", data={"username": "x", "password": "y"})
    assert refused.status_code == 403                       # a form is never sent in clear
    assert b"use HTTPS" in refused.data
    assert lan.get("/login", base_url="https://mailstead.lan").status_code == 200


def test_plain_http_is_refused_outside_dev_mode(tmp_path: object) -> None:
    from pathlib import Path

    settings = console_settings(Path(str(tmp_path)) / "data", server__dev_mode=False)
    add_admin(settings)
    app = make_app(settings)
    try:
        client = app.test_client()
        assert client.get("/login").status_code == 308        # on to HTTPS
        assert client.post("/login").status_code == 403
        page = client.get("/login", base_url="https://localhost")
        assert page.status_code == 200
        assert b"Development mode" not in page.data
    finally:
        close_app(app)


def test_dev_footer_says_plain_http(client: FlaskClient) -> None:
    assert b"Development mode" in client.get("/login").data


def test_echoed_username_is_escaped(client: FlaskClient) -> None:
    response = log_in(client, XSS, "some password 1")
    assert response.status_code in (400, 401)
    assert XSS.encode() not in response.data
    assert b"&lt;script&gt;" in response.data


def test_echoed_setup_fields_are_escaped(admin_client: FlaskClient) -> None:
    response = post_form(admin_client, "/setup/host", {"hostname": XSS, "domain": XSS})
    assert response.status_code == 400
    assert XSS.encode() not in response.data
    assert b"&lt;script&gt;" in response.data


def test_over_long_fields_are_refused(client: FlaskClient) -> None:
    response = log_in(client, "a" * 321, "password 123456")
    assert response.status_code == 400
    assert log_in(client, ADMIN, "p" * 1025).status_code == 400


def test_over_long_setup_fields_are_refused(admin_client: FlaskClient) -> None:
    response = post_form(admin_client, "/setup/host",
                         {"hostname": "a" * 300 + ".example", "domain": "example.org"})
    assert response.status_code == 400
    assert b"longer than 253" in response.data


def test_request_body_limit(client: FlaskClient) -> None:
    response = client.post("/login", data={"username": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


def test_no_secret_in_logs(client: FlaskClient, caplog: pytest.LogCaptureFixture,
                           settings: Settings) -> None:
    caplog.set_level(logging.DEBUG)
    log_in(client, ADMIN, "the-wrong-secret-991")
    log_in(client, ADMIN, ADMIN_PASSWORD)
    text = caplog.text + "".join(str(vars(r)) for r in caplog.records)
    assert "auth.login" in text                                 # the guard did log
    assert "the-wrong-secret-991" not in text
    assert ADMIN_PASSWORD not in text


def test_password_never_echoed(client: FlaskClient) -> None:
    response = log_in(client, ADMIN, "Wrong-Password-echo-1")
    assert b"Wrong-Password-echo-1" not in response.data


def _add_public_view(app: Flask) -> None:
    @security.public
    def policy() -> str:
        return "version: STSv1"

    app.add_url_rule("/test-public", "test_public", policy)


def test_public_views_answer_any_network_over_http(app: Flask) -> None:
    _add_public_view(app)
    outsider = app.test_client()
    outsider.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    response = outsider.get("/test-public")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert outsider.get("/login").status_code == 403


def test_public_views_are_not_held_by_the_first_boot_gate(fresh_app: Flask) -> None:
    _add_public_view(fresh_app)
    client = fresh_app.test_client()
    assert client.get("/test-public").status_code == 200
    assert client.get("/").headers["Location"] == "/setup"
