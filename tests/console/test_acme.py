"""ACME end to end against Let's Encrypt's Pebble on loopback (tests/peers/pebble.py).

Knot serves example.test with A records of 127.0.0.1 for mail., mta-sts. and autoconfig.;
Pebble resolves through it and fetches HTTP-01 answers from the console, served by
werkzeug's threaded server on the port Pebble's `httpPort` names. The client verifies
Pebble's HTTPS against Pebble's listener root (`tls.acme_ca_file`), nothing global.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from appliance import settings_store
from appliance.cli import main as cli_main
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.tls import acme_client
from appliance.tls.certs import make_self_signed
from console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    DOMAIN,
    add_admin,
    close_app,
    console_settings,
    log_in,
    make_app,
    post_form,
)
from peers.ca import TestCA
from peers.dns import KnotDns, zone_text
from peers.pebble import Pebble, free_tcp_port
from webui import setup_state

HOST = "mail.example.test"
NAMES = [HOST, "mta-sts.example.test", "autoconfig.example.test"]


@dataclass
class World:
    settings: Settings
    pebble: Pebble
    app: Flask       # the console that answers HTTP-01 over a real socket
    server: BaseWSGIServer

    @property
    def config(self) -> acme_client.AcmeConfig:
        return acme_client.AcmeConfig.from_settings(self.settings)

    def domains(self) -> list[str]:
        return SqliteDirectory(open_database(self.settings.data_dir)).list_domains()


def _serve(app: Flask, port: int) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    zone = zone_text(DOMAIN, [f"{n.split('.')[0]} A 127.0.0.1" for n in NAMES])
    with KnotDns(tmp_path / "knot", {DOMAIN: zone}) as knot:
        http_port = free_tcp_port()
        pebble = Pebble(tmp_path / "pebble", knot.resolver_spec, http_port)
        settings = console_settings(
            tmp_path / "data", tls__acme_directory=pebble.directory_url,
            tls__acme_ca_file=str(pebble.ca_file), tls__acme_email="postmaster@example.test",
            outbound__resolver=knot.resolver_spec)
        add_admin(settings)
        SqliteDirectory(open_database(settings.data_dir)).add_domain(DOMAIN)
        app = make_app(settings)
        server, thread = _serve(app, http_port)
        try:
            with pebble:
                yield World(settings, pebble, app, server)
        finally:
            server.shutdown()
            thread.join(10)
            close_app(app)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))


def _assert_from_pebble(world: World) -> x509.Certificate:
    """The written chain: leaf for NAMES, issued under this Pebble run's root, key 0600
    and matching the leaf."""
    cert_file, key_file = world.config.cert_file, world.config.key_file
    chain = x509.load_pem_x509_certificates(cert_file.read_bytes())
    leaf = chain[0]
    assert _names(leaf) == sorted(NAMES)
    assert "Pebble" in leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    root = x509.load_pem_x509_certificate(world.pebble.issuer_root())
    assert chain[-1].issuer == root.subject          # the chain ends under Pebble's root
    leaf.verify_directly_issued_by(chain[1])
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert cert_file.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()
    return leaf


def test_issue_writes_a_pebble_certificate_for_the_wanted_names(world: World) -> None:
    names = acme_client.wanted_names(world.settings, world.domains())
    assert names == NAMES          # DNS points every service name here
    info = acme_client.issue(world.config, names)
    leaf = _assert_from_pebble(world)
    assert info.not_after == leaf.not_valid_after_utc
    assert not info.self_signed
    account = world.settings.data_dir / acme_client.ACCOUNT_KEY
    assert account.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(account.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert not list((world.settings.data_dir / acme_client.CHALLENGES).iterdir())
    acme_client.issue(world.config, names)      # the same account key registers again
    assert _cert(world.config.cert_file).serial_number != leaf.serial_number


def _enabled(world: World) -> Settings:
    return console_settings(world.settings.data_dir, **{
        k.replace(".", "__"): v for k, v in world.settings.values.items()
        if k.startswith(("tls.", "outbound.resolver")) and k != "tls.acme_enabled"},
        tls__acme_enabled=True)


def test_renewal_skips_a_fresh_certificate_and_renews_a_near_expiry_one(
        world: World) -> None:
    settings = _enabled(world)
    make_self_signed(HOST, world.config.cert_file, world.config.key_file)
    first = acme_client.renew_if_due(settings, world.domains())
    assert first.outcome == "renewed"
    assert first.reason == "the certificate is self-signed"
    issued = _assert_from_pebble(world)
    again = acme_client.renew_if_due(settings, world.domains())
    assert again.outcome == "fresh"
    assert _cert(world.config.cert_file).serial_number == issued.serial_number
    later = issued.not_valid_after_utc - datetime.timedelta(days=29)
    due = acme_client.renew_if_due(settings, world.domains(), now=later)
    assert due.outcome == "renewed"
    assert "expires on" in due.reason
    assert _cert(world.config.cert_file).serial_number != issued.serial_number
    _assert_from_pebble(world)


def test_renewal_replaces_a_certificate_ten_days_from_expiry(world: World,
                                                            tmp_path: Path) -> None:
    ca = TestCA("Old Public CA")
    cert, key = ca.issue(NAMES, tmp_path / "old", "old")        # valid for a day
    world.config.cert_file.parent.mkdir(parents=True, exist_ok=True)
    world.config.cert_file.write_bytes(cert.read_bytes())
    world.config.key_file.write_bytes(key.read_bytes())
    result = acme_client.renew_if_due(_enabled(world), world.domains())
    assert result.outcome == "renewed"
    assert "expires on" in result.reason
    _assert_from_pebble(world)


def test_disabled_acme_renews_nothing(world: World) -> None:
    make_self_signed(HOST, world.config.cert_file, world.config.key_file)
    before = world.config.cert_file.read_bytes()
    result = acme_client.renew_if_due(world.settings, world.domains())
    assert result.outcome == "disabled"
    assert world.config.cert_file.read_bytes() == before


def test_cli_renew(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _enabled(world)
    config = str(settings.source)
    make_self_signed(HOST, world.config.cert_file, world.config.key_file)
    assert cli_main(["--config", config, "tls", "renew"]) == 0
    assert "renewed" in capsys.readouterr().out
    _assert_from_pebble(world)
    assert cli_main(["--config", config, "tls", "renew"]) == 0
    assert "fresh" in capsys.readouterr().out
    assert cli_main(["--config", config, "tls", "show"]) == 0
    shown = capsys.readouterr().out
    assert "names: mail.example.test, mta-sts.example.test, autoconfig.example.test" in shown
    assert "issuer: Pebble" in shown


def test_cli_renew_failure_exits_1_and_keeps_the_certificate(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _enabled(world)
    world.server.shutdown()       # the CA cannot reach the box
    world.server.server_close()
    make_self_signed(HOST, world.config.cert_file, world.config.key_file)
    before = world.config.cert_file.read_bytes()
    assert cli_main(["--config", str(settings.source), "tls", "renew"]) == 1
    err = capsys.readouterr().err
    assert "renewal failed, the current certificate stays: the CA could not validate" in err
    assert world.config.cert_file.read_bytes() == before


def test_challenge_not_served_fails_clearly_and_keeps_the_old_certificate(
        tmp_path: Path) -> None:
    zone = zone_text(DOMAIN, ["mail A 127.0.0.1"])
    with KnotDns(tmp_path / "knot", {DOMAIN: zone}) as knot:
        # nothing listens on Pebble's httpPort: the CA cannot fetch the token
        pebble = Pebble(tmp_path / "pebble", knot.resolver_spec, free_tcp_port())
        settings = console_settings(tmp_path / "data", tls__acme_directory=pebble.directory_url,
                                    tls__acme_ca_file=str(pebble.ca_file))
        config = acme_client.AcmeConfig.from_settings(settings)
        make_self_signed(HOST, config.cert_file, config.key_file)
        before = (config.cert_file.read_bytes(), config.key_file.read_bytes())
        with pebble, pytest.raises(acme_client.AcmeError) as failure:
            acme_client.issue(config, [HOST])
    text = str(failure.value)
    assert text.startswith("the CA could not validate mail.example.test: "), text
    assert "connection refused" in text           # the CA's own words name the cause
    assert (config.cert_file.read_bytes(), config.key_file.read_bytes()) == before
    assert not list((settings.data_dir / acme_client.CHALLENGES).iterdir())


def test_untrusted_ca_certificate_is_a_clear_error(world: World, tmp_path: Path) -> None:
    stranger = TestCA("Stranger").write_cert(tmp_path / "stranger.pem")
    config = acme_client.AcmeConfig(world.pebble.directory_url, "", world.settings.data_dir,
                                    world.config.cert_file, world.config.key_file, stranger)
    with pytest.raises(acme_client.AcmeError, match="HTTPS certificate is not trusted"):
        acme_client.issue(config, [HOST])
    assert not world.config.cert_file.exists()


def _reopen_tls_step(world: World) -> None:
    """The admin fixture marks every wizard step done: make the TLS step open again."""
    conn = open_database(world.settings.data_dir)
    conn.execute("DELETE FROM console_setup WHERE key = 'step.tls'")
    conn.close()


def test_wizard_requests_the_certificate_and_dashboard_shows_it(world: World) -> None:
    _reopen_tls_step(world)
    client = world.app.test_client()
    assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
    page = post_form(client, "/setup/tls", {"mode": "acme", "email": "hostmaster@example.test"})
    assert page.status_code == 200, page.data
    text = page.get_data(as_text=True)
    assert "Certificate issued" in text
    assert "autoconfig.example.test" in text
    _assert_from_pebble(world)
    conn = open_database(world.settings.data_dir)
    assert setup_state.get(conn, "tls_mode") == "acme"
    assert "tls" in setup_state.done_steps(conn)
    conn.close()
    dashboard = client.get("/").get_data(as_text=True)
    assert "TLS certificate" in dashboard
    assert "Pebble" in dashboard
    assert "mta-sts.example.test" in dashboard


def test_wizard_shows_the_ca_error_and_keeps_the_self_signed_certificate(
        world: World) -> None:
    world.server.shutdown()       # the CA cannot reach the box any more
    world.server.server_close()
    _reopen_tls_step(world)
    client = world.app.test_client()
    assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
    page = post_form(client, "/setup/tls", {"mode": "acme", "email": ""})
    assert page.status_code == 502
    text = page.get_data(as_text=True)
    assert "could not be issued" in text
    assert "the CA could not validate " in text   # a name, then the CA's own words
    assert "connect: connection refused" in text, re.findall(r'flash-error">([^<]*)', text)
    assert "self-signed certificate stays" in text
    cert = _cert(world.config.cert_file)
    assert cert.issuer == cert.subject            # the self-signed one made by the step
    conn = open_database(world.settings.data_dir)
    assert setup_state.get(conn, "tls_mode") != "acme"
    assert "tls" not in setup_state.done_steps(conn)
    assert "tls.acme_enabled" not in settings_store.read_rows(conn)   # ACME stays off
    conn.close()
