"""`/.well-known/acme-challenge/<token>` (webui/blueprints/acme.py): public, plain HTTP from
any network, answers only tokens with a written key authorization, 404 for anything else;
and the wizard's TLS step refuses a bad contact address before asking any CA."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.tls import acme_client
from console.conftest import post_form
from webui import setup_state

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
INTERNET = {"REMOTE_ADDR": "203.0.113.7"}     # outside console.allowed_networks


def _write(settings: Settings, token: str = TOKEN) -> Path:
    path = acme_client.challenge_path(settings.data_dir, token)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KEY_AUTHORIZATION)
    return path


def test_written_token_is_served_to_the_internet_over_http(client: FlaskClient,
                                                          settings: Settings) -> None:
    _write(settings)
    answer = client.get(f"/.well-known/acme-challenge/{TOKEN}", environ_base=INTERNET)
    assert answer.status_code == 200
    assert answer.data == KEY_AUTHORIZATION.encode()
    assert answer.mimetype == "application/octet-stream"
    assert "Set-Cookie" not in answer.headers
    # the same address gets nothing else from the console
    assert client.get("/login", environ_base=INTERNET).status_code == 403


def test_first_boot_still_serves_challenges(fresh_app: Flask, settings: Settings) -> None:
    _write(settings)
    answer = fresh_app.test_client().get(f"/.well-known/acme-challenge/{TOKEN}")
    assert answer.status_code == 200
    assert answer.data == KEY_AUTHORIZATION.encode()


def test_unknown_token_is_404(client: FlaskClient, settings: Settings) -> None:
    _write(settings)
    other = "Z" * 43
    assert client.get(f"/.well-known/acme-challenge/{other}",
                      environ_base=INTERNET).status_code == 404


@pytest.mark.parametrize("path", [
    "/.well-known/acme-challenge/",
    "/.well-known/acme-challenge/short",
    "/.well-known/acme-challenge/..%2F..%2Fmailstead.db",
    "/.well-known/acme-challenge/%2e%2e",
    f"/.well-known/acme-challenge/{TOKEN}.txt",
    f"/.well-known/acme-challenge/{TOKEN}%00",
    f"/.well-known/acme-challenge/{'A' * 200}",
    "/.well-known/acme-challenge/<script>alert(1)</script>AAAAAAAAAAAAAAAAAAAA",
])
def test_bad_tokens_are_404(client: FlaskClient, settings: Settings, path: str) -> None:
    _write(settings)
    (settings.data_dir / "acme" / "secret").write_text("not for the internet")
    local = client.get(path)              # from the LAN: no route or no such token
    assert local.status_code == 404
    # from the internet a path that is not a token route is not public: the network
    # check refuses it before routing would say 404
    remote = client.get(path, environ_base=INTERNET)
    assert remote.status_code in (403, 404)
    for answer in (local, remote):
        assert KEY_AUTHORIZATION.encode() not in answer.data
        assert b"<script>" not in answer.data


def test_post_is_not_allowed(client: FlaskClient, settings: Settings) -> None:
    _write(settings)
    assert client.post(f"/.well-known/acme-challenge/{TOKEN}").status_code in (400, 405)
    remote = client.post(f"/.well-known/acme-challenge/{TOKEN}", environ_base=INTERNET)
    assert remote.status_code == 403


def test_wizard_refuses_a_bad_contact_address(admin_client: FlaskClient,
                                              settings: Settings) -> None:
    for bad in ("not-an-address", "x" * 255 + "@example.test", "<script>alert(1)</script>"):
        page = post_form(admin_client, "/setup/tls", {"mode": "acme", "email": bad})
        assert page.status_code == 400
        assert b"Contact address" in page.data
        assert b"<script>alert" not in page.data          # echoed escaped
    conn = open_database(settings.data_dir)
    try:
        assert setup_state.get(conn, "tls_mode") != "acme"
    finally:
        conn.close()


def test_wizard_tls_page_offers_acme_with_a_contact_field(admin_client: FlaskClient) -> None:
    page = admin_client.get("/setup/tls")
    assert page.status_code == 200
    assert b'name="email"' in page.data
    assert b"acme-v02.api.letsencrypt.org" in page.data


def test_dashboard_shows_the_self_signed_certificate(admin_client: FlaskClient) -> None:
    post_form(admin_client, "/setup/tls", {"mode": "self-signed"})
    page = admin_client.get("/").get_data(as_text=True)
    assert "TLS certificate" in page
    assert "(self-signed)" in page
    assert "mail.example.test" in page
