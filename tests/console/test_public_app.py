"""The public-only app (webui/public.py) through Flask's test client: the internet's paths
answer over HTTPS, plain HTTP answers only ACME and autoconfig and sends the rest to HTTPS,
every console page is 404, the security headers are there, no cookie is ever set, bodies
are small and each client is rate-limited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.settings import Settings
from appliance.tls import acme_client
from webui import create_app, public
from webui.public import PLAIN_HTTP_ENDPOINTS, RATE_LIMIT, client_key, create_public_app

from .conftest import USER, add_admin, add_user, close_app, console_settings
from .test_clients import AUTOCONFIG, protocols, request_xml, servers

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
HTTPS = "https://mail.example.test"
INTERNET = "203.0.113.7"
PUBLIC_ENDPOINTS = {"acme.challenge", "clients.autoconfig", "clients.autodiscover",
                    "dns.mta_sts"}


@pytest.fixture
def public_settings(settings: Settings) -> Settings:
    add_admin(settings)
    add_user(settings)
    path = acme_client.challenge_path(settings.data_dir, TOKEN)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KEY_AUTHORIZATION)
    return settings


def _public(settings: Settings) -> Flask:
    return create_public_app({"MAILSTEAD_SETTINGS": settings, "TESTING": True})


@pytest.fixture
def public_app(public_settings: Settings) -> Flask:
    return _public(public_settings)


@pytest.fixture
def web(public_app: Flask) -> FlaskClient:
    """A client on the internet (not a LAN address)."""
    client = public_app.test_client()
    client.environ_base["REMOTE_ADDR"] = INTERNET
    return client


def _https(client: FlaskClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.open(path, method=method, base_url=HTTPS, **kwargs)


def test_the_public_surface_is_exactly_the_internets_paths(public_app: Flask) -> None:
    """A view newly marked `@public` is reachable from the internet: make it a choice."""
    public = {name for name, view in public_app.view_functions.items()
              if getattr(view, "console_public", False)}
    assert public == PUBLIC_ENDPOINTS
    assert PLAIN_HTTP_ENDPOINTS < PUBLIC_ENDPOINTS
    assert "static" not in public_app.view_functions


def test_autoconfig_autodiscover_mta_sts_and_acme_answer_over_https(web: FlaskClient) -> None:
    response = _https(web, "GET", AUTOCONFIG, query_string={"emailaddress": USER})
    assert response.status_code == 200
    assert servers(response.data)
    by_host = _https(web, "GET", "/mail/config-v1.1.xml",
                     headers={"Host": "autoconfig.example.test"})
    assert by_host.status_code == 200
    response = _https(web, "POST", "/autodiscover/autodiscover.xml", data=request_xml(USER),
                      content_type="text/xml")
    assert response.status_code == 200
    assert protocols(response.data)["IMAP"]
    policy = _https(web, "GET", "/.well-known/mta-sts.txt",
                    headers={"Host": "mta-sts.example.test"})
    assert policy.status_code == 200
    assert policy.mimetype == "text/plain"
    assert policy.data.startswith(b"version: STSv1")
    challenge = _https(web, "GET", f"/.well-known/acme-challenge/{TOKEN}")
    assert challenge.data == KEY_AUTHORIZATION.encode()


def test_unknown_domains_and_tokens_are_404(web: FlaskClient) -> None:
    assert _https(web, "GET", AUTOCONFIG, query_string={
        "emailaddress": "x@other.test"}).status_code == 404
    assert _https(web, "GET", "/.well-known/mta-sts.txt",
                  headers={"Host": "mta-sts.other.test"}).status_code == 404
    assert _https(web, "GET", "/.well-known/acme-challenge/" + "Z" * 43).status_code == 404


def _example_url(rule: Any) -> str:
    """A concrete URL for a route: each <converter:arg> becomes a plausible value."""
    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>",
                  lambda m: "1" if m.group(1) == "int" else "x", rule.rule)


def test_every_console_page_is_404(public_settings: Settings, web: FlaskClient) -> None:
    """Every route of the full console that is not public, by any method, from the
    internet and from the LAN: 404, the same as a path that never existed."""
    console = create_app({"MAILSTEAD_SETTINGS": public_settings, "TESTING": True})
    try:
        rules = [rule for rule in console.url_map.iter_rules()
                 if rule.endpoint not in PUBLIC_ENDPOINTS]
    finally:
        close_app(console)
    assert len(rules) > 40          # the whole console: login, setup, admin, self-service
    tried = 0
    for network in ("198.18", "10.0"):      # internet (benchmark range), LAN
        for rule in rules:
            url = _example_url(rule)
            for method in ("GET", "POST"):
                tried += 1                   # one client each: the rate limit stays out
                remote = f"{network}.{tried // 250}.{tried % 250 + 1}"
                answer = _https(web, method, url, data={"username": "admin"},
                                environ_base={"REMOTE_ADDR": remote})
                assert answer.status_code == 404, (method, url, answer.status_code)
                assert answer.data == b"404 Not Found\n"
                assert "Set-Cookie" not in answer.headers


@pytest.mark.parametrize("path", ["/", "/login", "/setup", "/admin/accounts/", "/dns",
                                  "/clients/apple.mobileconfig", "/static/console.css",
                                  "/healthz", "/%3Cscript%3Ealert(1)%3C/script%3E"])
def test_console_paths_are_404_and_nothing_is_echoed(web: FlaskClient, path: str) -> None:
    answer = _https(web, "GET", path)
    assert answer.status_code == 404
    assert answer.mimetype == "text/plain"
    assert b"script" not in answer.data


def test_security_headers_over_https(web: FlaskClient) -> None:
    for answer in (_https(web, "GET", f"/.well-known/acme-challenge/{TOKEN}"),
                   _https(web, "GET", "/login")):
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in answer.headers


def test_plain_http_answers_acme_and_autoconfig_only(web: FlaskClient) -> None:
    challenge = web.get(f"/.well-known/acme-challenge/{TOKEN}")
    assert challenge.status_code == 200
    assert challenge.data == KEY_AUTHORIZATION.encode()
    assert "Strict-Transport-Security" not in challenge.headers    # RFC 6797 7.2
    assert challenge.headers["X-Content-Type-Options"] == "nosniff"
    config = web.get("/mail/config-v1.1.xml", headers={"Host": "autoconfig.example.test"})
    assert config.status_code == 200
    assert servers(config.data)


@pytest.mark.parametrize(("method", "path", "host", "target"), [
    ("GET", "/.well-known/mta-sts.txt", "mta-sts.example.test",
     "https://mta-sts.example.test:4430/.well-known/mta-sts.txt"),
    ("POST", "/autodiscover/autodiscover.xml", "autodiscover.example.test",
     "https://autodiscover.example.test:4430/autodiscover/autodiscover.xml"),
    ("GET", "/login?next=%2Fadmin", "mail.example.test",
     "https://mail.example.test:4430/login?next=%2Fadmin"),
    ("GET", "/", "evil/host", "https://mail.example.test:4430/"),
])
def test_plain_http_sends_the_rest_to_https(public_settings: Settings, method: str,
                                            path: str, host: str, target: str) -> None:
    """308 keeps the method (RFC 9110 15.4.9); in dev mode the public HTTPS port, and a
    Host that is not a name or address becomes server.hostname."""
    settings = console_settings(public_settings.data_dir, listen__public_tls_port=4430)
    client = _public(settings).test_client()
    answer = client.open(path, method=method, headers={"Host": host})
    assert answer.status_code == 308
    assert answer.headers["Location"] == target


def test_appliance_redirects_to_port_443(public_settings: Settings) -> None:
    """On the appliance the world's HTTPS port is 443 (the firewall sends it on)."""
    settings = console_settings(public_settings.data_dir, server__dev_mode=False)
    client = _public(settings).test_client()
    answer = client.get("/", headers={"Host": "mail.example.test"})
    assert answer.headers["Location"] == "https://mail.example.test/"
    v6 = client.get("/dns", headers={"Host": "[2001:db8::1]"})
    assert v6.headers["Location"] == "https://[2001:db8::1]/dns"


def test_request_bodies_are_small(web: FlaskClient) -> None:
    big = request_xml(USER) + b" " * (17 * 1024)
    answer = _https(web, "POST", "/autodiscover/autodiscover.xml", data=big,
                    content_type="text/xml")
    assert answer.status_code == 413


def test_each_client_is_rate_limited(web: FlaskClient) -> None:
    path = f"/.well-known/acme-challenge/{TOKEN}"
    for _ in range(RATE_LIMIT):
        assert _https(web, "GET", path).status_code == 200
    refused = _https(web, "GET", path)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    other = _https(web, "GET", path, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert other.status_code == 200


def test_rate_limit_counts_an_ipv6_client_by_its_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:198.51.100.9") == "198.51.100.9"
    assert client_key("198.51.100.9") == "198.51.100.9"


def test_a_public_view_cannot_write_a_session(public_settings: Settings) -> None:
    """No SECRET_KEY: a session write fails instead of setting a cookie for the internet."""
    app = _public(public_settings)
    with app.test_request_context("/"):
        from flask import session

        with pytest.raises(RuntimeError):
            session["x"] = "y"


@pytest.fixture
def console_app(public_settings: Settings) -> Iterator[Flask]:
    app = create_app({"MAILSTEAD_SETTINGS": public_settings, "TESTING": True})
    yield app
    close_app(app)


def test_the_lan_console_still_has_everything(console_app: Flask) -> None:
    """The full console (port 443 from the LAN) is unchanged by the public app."""
    lan = console_app.test_client()
    assert lan.get("/login").status_code == 200
    assert lan.get(f"/.well-known/acme-challenge/{TOKEN}").status_code == 200


def test_a_flood_from_many_addresses_resets_the_counts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays bounded: past MAX_TRACKED_CLIENTS live clients the counts start afresh
    (failing open: ACME and MTA-STS must keep answering)."""
    monkeypatch.setattr(public, "MAX_TRACKED_CLIENTS", 3)
    limiter = public.ClientLimiter(limit=1, window=60.0)
    assert limiter.acquire("198.51.100.1") == 0.0
    assert limiter.acquire("198.51.100.1") > 0          # over its limit
    for n in range(2, 6):
        assert limiter.acquire(f"198.51.100.{n}") == 0.0
    assert limiter.acquire("198.51.100.1") == 0.0       # the table was reset
