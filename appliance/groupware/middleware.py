"""The WSGI layer in front of Radicale: what is refused before Radicale sees a request.

In order: `/.well-known/caldav|carddav` → 301 to `/` (RFC 6764 §5: the context path is the
root); a per-client request rate limit (429); plain HTTP from anywhere but loopback (403:
outside dev mode gunicorn speaks only TLS, so this only guards a dev instance bound to a LAN
address); a Basic `Authorization` header that is not base64 of `login:password` in UTF-8
(401, where Radicale would fail with 500); a body over `dav.max_content_length` by its
Content-Length (413 without reading it) or, when chunked, as soon as it passes the limit;
a body that does not arrive within `dav.request_timeout` (408); an XML body with a DTD
(400: entity expansion is an attack, and Radicale would answer 500). Radicale then reads the
body from memory. A header over gunicorn's limits never gets here (gunicorn answers 400/431).
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from appliance.auth.throttle import client_key

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
WELL_KNOWN = frozenset({"/.well-known/caldav", "/.well-known/carddav"})
REALM = 'Basic realm="Mailstead calendars and contacts", charset="UTF-8"'  # RFC 7617 §2.1
CHUNK = 64 * 1024
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL", "LOCK"})


@dataclass(frozen=True)
class Limits:
    max_body: int               # bytes
    request_timeout: float      # seconds for the whole body
    requests_per_minute: int    # per client address; 0: no limit


class RateLimiter:
    """Fixed one-minute windows per client (an IPv4 address, an IPv6 /64: `client_key`), at
    most `max_clients` remembered: past that, the clients of past windows are dropped, and
    if the current window alone fills it (a flood from everywhere) the counts start afresh."""

    def __init__(self, per_minute: int, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._max_clients = max_clients
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self._per_minute <= 0:
            return True
        window = int(self._clock() // 60)
        key = client_key(client)
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                count = 0
            if len(self._windows) >= self._max_clients and key not in self._windows:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
                if len(self._windows) >= self._max_clients:
                    self._windows = {}
            self._windows[key] = (window, count + 1)
            return count < self._per_minute

    def __len__(self) -> int:
        return len(self._windows)


def basic_credentials_ok(header: str) -> bool:
    """Whether a Basic `Authorization` value decodes to UTF-8 `login:password` (RFC 7617 §2);
    other schemes are left to Radicale (which ignores them: no login)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        decoded = base64.b64decode(token.strip().encode("ascii"), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return False
    return ":" in text and "\0" not in text


def _declares_dtd(body: bytes) -> bool:
    """A DAV request body never needs a document type (RFC 4918 §20.6 warns of entity
    expansion); Radicale's defusedxml refuses entities but answers 500."""
    head = body.lower()
    return b"<!doctype" in head or b"<!entity" in head


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class DavMiddleware:
    """Wraps the Radicale application (see the module text for what it refuses)."""

    def __init__(self, app: WSGIApp, limits: Limits, limiter: RateLimiter) -> None:
        self._app = app
        self._limits = limits
        self._limiter = limiter

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = self._refusal(environ)
        if refusal is not None:
            return _reply(start_response, *refusal)
        body = self._read_body(environ)
        if isinstance(body, tuple):
            return _reply(start_response, *body)
        if environ.get("REQUEST_METHOD") in XML_METHODS and _declares_dtd(body):
            return _reply(start_response, "400 Bad Request", [])
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self._app(environ, start_response)

    def _refusal(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]]] | None:
        path = environ.get("PATH_INFO", "") or "/"
        if path.rstrip("/") in WELL_KNOWN:
            return "301 Moved Permanently", [("Location", "/")]
        client = str(environ.get("REMOTE_ADDR", ""))
        if not self._limiter.allow(client):
            return "429 Too Many Requests", [("Retry-After", "60")]
        if environ.get("wsgi.url_scheme") != "https" and not _is_loopback(client):
            return "403 Forbidden", []
        if not basic_credentials_ok(str(environ.get("HTTP_AUTHORIZATION", ""))):
            return "401 Unauthorized", [("WWW-Authenticate", REALM)]
        length = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not length.isdigit():
            return "400 Bad Request", []
        if int(length) > self._limits.max_body:
            return "413 Content Too Large", [("Connection", "close")]
        return None

    def _read_body(self, environ: dict[str, Any]
                   ) -> bytes | tuple[str, list[tuple[str, str]]]:
        """The whole body within the time limit; chunked bodies up to the size limit."""
        length = int(str(environ.get("CONTENT_LENGTH") or "0").strip())
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if not length and not chunked:
            return b""
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(self._limits.request_timeout)   # reset by gunicorn afterwards
        deadline = time.monotonic() + self._limits.request_timeout
        stream = environ["wsgi.input"]
        wanted = length if not chunked else self._limits.max_body + 1
        parts: list[bytes] = []
        got = 0
        try:
            while got < wanted:
                if time.monotonic() > deadline:
                    return "408 Request Timeout", [("Connection", "close")]
                part = stream.read(min(CHUNK, wanted - got))
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except (TimeoutError, OSError):
            return "408 Request Timeout", [("Connection", "close")]
        if got > self._limits.max_body:
            return "413 Content Too Large", [("Connection", "close")]
        if not chunked and got < length:
            return "400 Bad Request", [("Connection", "close")]
        return b"".join(parts)


def _reply(start_response: Callable[..., Any], status: str,
           headers: list[tuple[str, str]]) -> Iterable[bytes]:
    body = status.encode("ascii") + b"\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]
