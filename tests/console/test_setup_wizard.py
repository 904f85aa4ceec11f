"""The first-boot wizard: the gate, the setup code (and its lockout), every step in order."""

from __future__ import annotations

import stat
from pathlib import Path

import pyotp
from cryptography import x509
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from webui import admins, setup_code, setup_state

from .conftest import form_token, post_form

GOOD_PASSWORD = "Setup-Admin-Pass-77"


def code_of(settings: Settings) -> str:
    found = setup_code.read(settings.data_dir)
    assert found is not None
    return found


def enter_code(client: FlaskClient, code: str) -> object:
    return post_form(client, "/setup/code", {"code": code}, token_page="/setup")


def create_admin(client: FlaskClient, settings: Settings) -> None:
    assert enter_code(client, code_of(settings)).status_code == 302  # type: ignore[attr-defined]
    response = post_form(client, "/setup/admin", {"username": "Boss", "password": GOOD_PASSWORD,
                                                  "password2": GOOD_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/setup/totp"


def test_code_file_is_private_and_well_formed(fresh_app: Flask, settings: Settings) -> None:
    path = setup_code.path(settings.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    code = code_of(settings)
    assert len(setup_code.normalise(code)) == setup_code.LENGTH
    assert set(setup_code.normalise(code)) <= set(setup_code.ALPHABET)


def test_every_page_leads_to_the_wizard_before_an_admin_exists(fresh_app: Flask) -> None:
    client = fresh_app.test_client()
    for path in ("/", "/login", "/admin/accounts/", "/no-such-page", "/setup/host"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] in ("/setup", "/login?next=/setup/host"), path
    page = client.get("/setup")
    assert page.status_code == 200
    assert b"setup code" in page.data
    assert client.get("/static/console.css").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_admin_form_needs_the_code(fresh_app: Flask) -> None:
    client = fresh_app.test_client()
    assert client.get("/setup/admin").headers["Location"] == "/setup"
    token = form_token(client.get("/setup").data)
    response = client.post("/setup/admin", data={"csrf_token": token, "username": "x",
                                                  "password": GOOD_PASSWORD,
                                                  "password2": GOOD_PASSWORD})
    assert response.status_code == 302
    assert not admins.any_admin(open_database(Path(fresh_app.config["MAILSTEAD_SETTINGS"]
                                                   .data_dir)))


def test_wrong_code_is_refused(fresh_app: Flask) -> None:
    client = fresh_app.test_client()
    response = enter_code(client, "AAAA-BBBB-CCCC")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert b"not the setup code" in response.data  # type: ignore[attr-defined]
    assert client.get("/setup/admin").status_code == 302


def test_setup_code_brute_force_is_locked_out(fresh_app: Flask, settings: Settings) -> None:
    """auth.max_failures (5) wrong codes lock the code out; then even the right one fails,
    from this client and from another (the code is one account for the throttle)."""
    client = fresh_app.test_client()
    statuses = [enter_code(client, f"WRNG-CODE-{i:04d}").status_code  # type: ignore[attr-defined]
                for i in range(settings.get_int("auth.max_failures"))]
    assert statuses == [401] * len(statuses)
    locked = enter_code(client, code_of(settings))
    assert locked.status_code == 429  # type: ignore[attr-defined]
    assert b"Too many wrong codes" in locked.data  # type: ignore[attr-defined]
    other = fresh_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    assert enter_code(other, code_of(settings)).status_code == 429  # type: ignore[attr-defined]
    assert other.get("/setup/admin").status_code == 302


def test_code_is_accepted_with_any_case_and_spacing(fresh_app: Flask, settings: Settings
                                                    ) -> None:
    client = fresh_app.test_client()
    typed = " " + code_of(settings).replace("-", " ").lower() + " "
    assert enter_code(client, typed).headers["Location"] == "/setup/admin"  # type: ignore
    assert client.get("/setup/admin").status_code == 200


def test_weak_and_mismatched_passwords_are_refused(fresh_app: Flask, settings: Settings
                                                   ) -> None:
    client = fresh_app.test_client()
    enter_code(client, code_of(settings))
    for password, again, message in (
            ("short1A!", "short1A!", b"too short"),
            ("alllowercaseletters", "alllowercaseletters", b"mix three"),
            ("Boss-is-the-admin-1", "Boss-is-the-admin-1", b"too easy"),
            (GOOD_PASSWORD, GOOD_PASSWORD + "x", b"differ")):
        response = post_form(client, "/setup/admin", {"username": "boss", "password": password,
                                                      "password2": again})
        assert response.status_code == 400, password
        assert message in response.data, password
        assert password.encode() not in response.data       # never echoed
    bad_name = post_form(client, "/setup/admin", {"username": "no spaces<b>",
                                                  "password": GOOD_PASSWORD,
                                                  "password2": GOOD_PASSWORD})
    assert bad_name.status_code == 400
    assert b"no spaces&lt;b&gt;" in bad_name.data


def test_the_whole_wizard(fresh_app: Flask, settings: Settings) -> None:
    client = fresh_app.test_client()
    create_admin(client, settings)
    data_dir = settings.data_dir
    assert setup_code.read(data_dir) is None                     # one-time: gone
    assert client.get("/setup/admin").headers["Location"] == "/setup"
    late = post_form(client, "/setup/code", {"code": "ANY"}, token_page="/setup/totp")
    assert late.headers["Location"] == "/setup"

    # TOTP: a QR code as an SVG data: URI, and the key to type by hand
    page = client.get("/setup/totp")
    assert page.status_code == 200
    assert b'src="data:image/svg+xml;base64,' in page.data
    secret = page.data.decode().split('class="secret">')[1].split("<")[0]
    wrong = post_form(client, "/setup/totp", {"action": "enable", "code": "000000"})
    assert wrong.status_code == 400
    response = post_form(client, "/setup/totp", {"action": "enable",
                                                 "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    conn = open_database(data_dir)
    stored = admins.get(conn, "boss")
    assert stored is not None
    assert stored.totp_secret == secret
    assert secret.encode() not in client.get("/setup/totp").data   # never shown again

    # hostname and primary domain
    assert client.get("/setup").headers["Location"] == "/setup/host"
    bad = post_form(client, "/setup/host", {"hostname": "not a host", "domain": "x"})
    assert bad.status_code == 400
    ok = post_form(client, "/setup/host", {"hostname": "MX.Example.ORG",
                                           "domain": "Example.org"})
    assert ok.status_code == 302
    assert "example.org" in SqliteDirectory(conn).list_domains()
    assert setup_state.get(conn, "hostname") == "mx.example.org"
    assert conn.execute("SELECT value FROM settings WHERE key = 'server.hostname'"
                        ).fetchone()[0] == "mx.example.org"

    # time zone
    assert client.get("/setup").headers["Location"] == "/setup/timezone"
    assert post_form(client, "/setup/timezone", {"timezone": "Mars/Olympus"}).status_code == 400
    assert post_form(client, "/setup/timezone",
                     {"timezone": "Europe/Berlin"}).status_code == 302
    assert setup_state.get(conn, "timezone") == "Europe/Berlin"

    # TLS: the self-signed certificate is made for the new hostname
    assert client.get("/setup").headers["Location"] == "/setup/tls"
    assert b"reachable from the internet" in client.get("/setup/tls").data
    # (choosing ACME asks a CA at once: tests/console/test_acme.py, against Pebble)
    assert post_form(client, "/setup/tls", {"mode": "self-signed"}).status_code == 302
    cert = x509.load_pem_x509_certificate(settings.data_path("tls.cert_file").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mx.example.org" in names.get_values_for_type(x509.DNSName)
    assert setup_state.get(conn, "tls_mode") == "self-signed"

    # DKIM keys for the primary domain
    assert client.get("/setup").headers["Location"] == "/setup/dkim"
    assert b"No keys yet" in client.get("/setup/dkim").data
    assert post_form(client, "/setup/dkim", {}).status_code == 302
    assert (data_dir / "dkim" / "example.org" / "state.json").is_file()
    assert b"_domainkey.example.org" in client.get("/setup/dkim").data

    # the end: a link to the DNS page; the dashboard no longer nags
    assert client.get("/setup").headers["Location"] == "/setup/done"
    done = client.get("/setup/done")
    assert b'href="/dns"' in done.data
    assert b"Setup is not finished" not in client.get("/").data
    actions = [r[0] for r in conn.execute("SELECT action FROM audit_log")]
    actors = {r[0] for r in conn.execute("SELECT actor FROM audit_log")}
    assert actors == {"boss"}
    assert {"admin.create", "admin.totp_enable", "domain.create", "setup.host",
            "setup.timezone", "setup.tls", "dkim.ensure_keys"} <= set(actions)


def test_totp_can_be_skipped(fresh_app: Flask, settings: Settings) -> None:
    client = fresh_app.test_client()
    create_admin(client, settings)
    response = post_form(client, "/setup/totp", {"action": "skip"})
    assert response.headers["Location"] == "/setup"
    assert client.get("/setup").headers["Location"] == "/setup/host"
    found = admins.get(open_database(settings.data_dir), "boss")
    assert found is not None
    assert found.totp_secret is None
