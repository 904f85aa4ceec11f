"""Security policy of every response and request: headers, allowed networks, HTTPS.

Headers (OWASP secure headers): a Content-Security-Policy without inline script, framing
refused twice (X-Frame-Options for old browsers, frame-ancestors for new), no MIME sniffing,
no referrer, no caching of pages (they may show secrets once), HSTS over HTTPS (RFC 6797).
Requests from outside `console.allowed_networks` get 403; plain HTTP is refused (a GET is
redirected to HTTPS, RFC 9110 15.4.9: 308 keeps the method) except for
the dev console on loopback. Views that mail clients and other mail servers fetch from
anywhere (autoconfig, Autodiscover, the MTA-STS policy) are marked `@public`: no network or
HTTPS check, and no first-boot redirect; they must not use the session.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, redirect, request

from webui import services

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000"     # RFC 6797 6.1.1: a year; no includeSubDomains (mail hosts)
F = TypeVar("F", bound=Callable[..., object])


def public(view: F) -> F:
    """Mark a view that answers any network, over HTTP too (autoconfig, MTA-STS policy)."""
    view.console_public = True  # type: ignore[attr-defined]
    return view


def is_public_view() -> bool:
    """Whether this request goes to a view marked `@public`."""
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "console_public", False))


def init_app(app: Flask) -> None:
    app.before_request(_check_client)
    app.after_request(_add_headers)


@lru_cache(maxsize=32)
def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def client_allowed(remote: str, allowed: str) -> bool:
    """Whether `remote` (an IP address) lies in one of the comma-separated `allowed` nets."""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in _networks(allowed))


def is_loopback(remote: str | None) -> bool:
    try:
        return ipaddress.ip_address((remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def plain_http_allowed() -> bool:
    """The dev console may speak plain HTTP, and only to loopback clients."""
    return services.settings().get_bool("server.dev_mode") and is_loopback(request.remote_addr)


def _check_client() -> None:
    if is_public_view():
        return
    if not client_allowed(request.remote_addr or "", services.option("console.allowed_networks")):
        abort(403, "the console answers only the local network")
    if not request.is_secure and not plain_http_allowed():
        if request.method in ("GET", "HEAD"):      # a browser that typed http://: send it on
            abort(redirect(https_url(), 308))
        abort(403, "use HTTPS: the console accepts plain HTTP only in dev mode on loopback")


def https_url() -> str:
    """This request's URL over HTTPS on the console's port (the Host the client used: like
    a web server's `https://$host$request_uri`, it can only send the client back to us)."""
    host = urlsplit("//" + request.host).hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = int(services.option("listen.console_port"))
    target = request.full_path if request.query_string else request.path
    return f"https://{host}{'' if port == 443 else f':{port}'}{target}"


def _add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = HSTS
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response
