"""The WSGI checks in front of Radicale, on the real app in-process: RFC 6764 redirects,
plain HTTP only from loopback, the per-client rate limit, DTDs in XML bodies, and the
rate limiter's window on a test clock."""

from __future__ import annotations

from pathlib import Path

from appliance.groupware.app import create_app
from appliance.groupware.middleware import RateLimiter

from .conftest import ALICE, add_accounts, basic, call, dav_settings


def test_well_known_needs_no_login(tmp_path: Path) -> None:
    app = create_app(dav_settings(tmp_path / "data"))
    for path in ("/.well-known/caldav", "/.well-known/carddav/", "/.well-known/caldav/"):
        reply = call(app, "PROPFIND", path)
        assert reply.status == 301
        assert reply.headers["Location"] == "/"
    assert call(app, "GET", "/.well-known/other").status == 404


def test_plain_http_only_from_loopback(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    add_accounts(settings, [ALICE])
    app = create_app(settings)
    assert call(app, "PROPFIND", "/", auth=basic(ALICE), client="192.0.2.7").status == 403
    assert call(app, "PROPFIND", "/", auth=basic(ALICE), client="::1").status == 207
    assert call(app, "PROPFIND", "/", auth=basic(ALICE), client="127.0.0.1").status == 207


def test_rate_limit_per_client(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data", dav__requests_per_minute=3)
    app = create_app(settings)
    statuses = [call(app, "OPTIONS", "/").status for _ in range(4)]
    assert 429 not in statuses[:3]
    assert statuses[3] == 429
    assert call(app, "OPTIONS", "/", client="127.0.0.2").status != 429


def test_dtd_in_xml_body_is_refused(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    add_accounts(settings, [ALICE])
    app = create_app(settings)
    body = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>')
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE), body=body).status == 400


def test_rate_limiter_windows_and_bound() -> None:
    now = [0.0]
    limiter = RateLimiter(2, max_clients=2, clock=lambda: now[0])
    assert limiter.allow("a")
    assert limiter.allow("a")
    assert not limiter.allow("a")
    now[0] = 60.0
    assert limiter.allow("a")
    for client in ("b", "c", "d"):
        assert limiter.allow(client)
        assert len(limiter) <= 2                     # bounded even within one window
    # one IPv6 /64 is one client
    now[0] = 120.0
    assert limiter.allow("2001:db8:0:1::1")
    assert limiter.allow("2001:db8:0:1::2")
    assert not limiter.allow("2001:db8:0:1:ffff::3")
    assert RateLimiter(0).allow("anyone")
