"""The public web app: only the console's `@public` views, for the internet's listeners.

`mailstead console serve --public` (HTTPS, `listen.public_tls_port`; the firewall sends
port 443 from outside the LAN there) and `--public-http` (plain HTTP, `listen.public_web_port`,
80 on the appliance) run `create_public_app()`. It registers the console's blueprints but
answers only views marked `@security.public` (ACME HTTP-01, autoconfig, Autodiscover, the
MTA-STS policy); every other path is 404, so the login and admin pages do not exist here.
Over plain HTTP only the ACME challenge and autoconfig answer; anything else is redirected
to HTTPS (RFC 9110 15.4.9: 308 keeps the method). No session, no CSRF (no form takes a
session here), small bodies, and a per-client request rate limit (429).
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, redirect, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from appliance.core.ratelimit import SlidingWindowLimiter
from webui import register_blueprints, security, services

# Autodiscover's body limit (webui/blueprints/clients.py); nothing public takes more.
MAX_REQUEST_BYTES = 16 * 1024
# What plain HTTP may fetch: RFC 8555 8.3 (the CA asks http://<name>/...; port 80 only) and
# Thunderbird's autoconfig, which falls back to http://autoconfig.<domain>/. The MTA-STS
# policy (RFC 8461 3.3) and Autodiscover are HTTPS only.
PLAIN_HTTP_ENDPOINTS = frozenset({"acme.challenge", "clients.autoconfig"})
# Per client (an IPv4 address, an IPv6 /64): enough for a CA's validation from several
# vantage points or a mail client's set-up; a scanner gets 429. Memory: clients x events.
RATE_LIMIT = 20                 # requests ...
RATE_WINDOW = 10.0              # ... per this many seconds
MAX_TRACKED_CLIENTS = 10_000    # past this (after pruning) the counts start afresh
_HOST_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
LIMITER_KEY = "mailstead.public_limiter"


class ClientLimiter:
    """A thread-safe per-client sliding window (gunicorn's gthread worker shares the app)."""

    def __init__(self, limit: int = RATE_LIMIT, window: float = RATE_WINDOW) -> None:
        self._limit, self._window = limit, window
        self._limiter = SlidingWindowLimiter(limit, window)
        self._lock = threading.Lock()

    def acquire(self, remote: str) -> float:
        """Count a request from `remote`: 0 if allowed, else seconds until one would be."""
        key = client_key(remote)
        with self._lock:
            if len(self._limiter) > MAX_TRACKED_CLIENTS:
                self._limiter.prune()
                if len(self._limiter) > MAX_TRACKED_CLIENTS:   # a flood from everywhere:
                    self._limiter = SlidingWindowLimiter(self._limit, self._window)  # open
            if self._limiter.acquire(key):
                return 0.0
            return max(self._limiter.retry_after(key), 1.0)


def client_key(remote: str) -> str:
    """What the rate limit counts: the IPv4 address, or the IPv6 /64 (one customer's LAN)."""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def create_public_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the public-only application (gunicorn: `webui.public:create_public_app()`).

    Args:
        config: Flask config overrides; `MAILSTEAD_SETTINGS` as for `create_app()`.
    """
    app = Flask("webui", static_folder=None)
    # No SECRET_KEY: Flask gives every request a NullSession, so a public view that tried
    # to write a session would fail loudly instead of setting a cookie for the internet.
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, TEMPLATES_AUTO_RELOAD=False)
    if config:
        app.config.update(config)
    services.init_app(app)
    app.extensions[LIMITER_KEY] = ClientLimiter()
    app.before_request(_only_public)           # first: nothing else runs for other paths
    security.init_app(app)                     # headers (HSTS over HTTPS, CSP, no-store)
    app.register_error_handler(HTTPException, _plain_error)
    register_blueprints(app)
    return app


def _only_public() -> ResponseReturnValue | None:
    """429 past the client's rate; 404 for anything not `@public`; over plain HTTP, a
    redirect to HTTPS for all but the ACME challenge and autoconfig."""
    wait = _limiter().acquire(request.remote_addr or "")
    if wait:
        response = Response("429 Too Many Requests\n", 429, mimetype="text/plain")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    if not request.is_secure and request.endpoint not in PLAIN_HTTP_ENDPOINTS:
        return redirect(https_url(), 308)
    if not security.is_public_view():
        abort(404)
    return None


def _limiter() -> ClientLimiter:
    found = current_app.extensions[LIMITER_KEY]
    assert isinstance(found, ClientLimiter)
    return found


def https_url() -> str:
    """This request's URL over HTTPS. The port is 443, which the world uses (the firewall
    sends it to the public listener, the LAN to the console); in dev mode, where no
    firewall redirects, the public listener's own `listen.public_tls_port`. A Host that is
    not a plain DNS name or IP address is replaced by `server.hostname`."""
    current = services.settings()
    host = (urlsplit("//" + request.host).hostname or "").rstrip(".")
    if not _HOST_NAME.match(host) and not _is_ip(host):
        host = current.get_str("server.hostname")
    if ":" in host:
        host = f"[{host}]"
    port = current.get_int("listen.public_tls_port") if current.get_bool(
        "server.dev_mode") else 443
    target = request.full_path if request.query_string else request.path
    return f"https://{host}{'' if port == 443 else f':{port}'}{target}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _plain_error(error: HTTPException) -> ResponseReturnValue:
    """A short text answer: the console's HTML error page (navigation, session) is not
    for the internet, and nothing from the request is echoed."""
    if error.response is not None:
        return error.get_response()
    code = error.code or 500
    return Response(f"{code} {error.name}\n", code, mimetype="text/plain")
