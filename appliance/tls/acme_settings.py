"""Validators of the `tls.acme_*` settings, apart from the ACME client (acme_client.py).

Loading the settings runs these; importing the client would pull the `acme` library,
`requests` and pyOpenSSL into every process that reads a setting (the engine, the monitor),
several MB each for nothing.
"""

from __future__ import annotations

import urllib.parse

from appliance.core.addresses import AddressError, parse_address


def parse_directory_url(text: str) -> str:
    """Validator of `tls.acme_directory`: an https:// URL with a host (RFC 8555 7.1.1)."""
    url = urllib.parse.urlsplit(text.strip())
    if url.scheme != "https" or not url.hostname:
        raise ValueError(f"expected an https:// URL, got {text!r}")
    return text.strip()


def parse_contact(text: str) -> str:
    """Validator of `tls.acme_email`: empty or one email address (RFC 8555 7.3 contact)."""
    if not text.strip():
        return ""
    try:
        return str(parse_address(text.strip()))
    except AddressError as exc:
        raise ValueError(f"not an email address: {text!r}") from exc
