"""TLS contexts: TLS 1.2 and newer only, modern ciphers, no compression or renegotiation."""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path
from typing import Any


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side context for STARTTLS and implicit TLS listeners.

    Raises:
        OSError, ssl.SSLError: the certificate or key cannot be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20")
    context.load_cert_chain(cert_file, key_file)
    return context


def gunicorn_ssl_context(config: Any, _default_factory: Any) -> ssl.SSLContext:
    """gunicorn's `ssl_context` hook: the web listeners (console, public HTTPS, DAV) get the
    mail listeners' policy (`server_context`) with gunicorn's certfile and keyfile, instead
    of gunicorn's context, whose floor would be the system OpenSSL configuration's."""
    return server_context(Path(config.certfile), Path(config.keyfile))


def client_context(*, verify: bool, ca_file: Path | None = None) -> ssl.SSLContext:
    """A client-side context for STARTTLS to MX hosts and HTTPS to MTA-STS policy hosts.

    With `verify` the peer's chain must lead to `ca_file` (or the system's trusted CAs when
    None) and its name must match the `server_hostname` given at connect time (RFC 8461 4.2,
    RFC 6125). Without it the context still encrypts (opportunistic TLS, RFC 3207 4.1: an
    unverified certificate is better than plaintext when nothing requires more).

    Raises:
        OSError, ssl.SSLError: `ca_file` cannot be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if verify:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def shared_client_context(*, verify: bool, ca_file: Path | None = None) -> ssl.SSLContext:
    """`client_context`, made once per (verify, CA file) and reused: building one loads the
    CA file, which cost more than the rest of a message's delivery. A CA file that changes
    (new size or modification time) gives a new context. Callers must not modify it.

    Raises:
        OSError, ssl.SSLError: `ca_file` cannot be loaded.
    """
    stamp = None
    if verify and ca_file is not None:
        info = os.stat(ca_file)
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    return _cached_client_context(verify, ca_file if verify else None, stamp)


@functools.lru_cache(maxsize=16)
def _cached_client_context(verify: bool, ca_file: Path | None,
                           _stamp: tuple[int, int, int] | None) -> ssl.SSLContext:
    return client_context(verify=verify, ca_file=ca_file)
