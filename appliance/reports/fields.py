"""Checked field readers shared by the DMARC and TLS-RPT parsers (pure).

Every value taken from a report goes through one of these, so each bad value becomes a
ReportError that names the field, never a KeyError or a silently odd row.
"""

from __future__ import annotations

import ipaddress

from appliance.core.addresses import AddressError, normalise_domain
from appliance.reports.model import DEFAULT_LIMITS, ReportError

MAX_COUNT = 2**40        # counts and epoch seconds beyond this are nonsense, not data


def text(value: object, name: str, *, required: bool = True, lower: bool = False,
         max_text: int = DEFAULT_LIMITS.max_text) -> str:
    """A bounded, stripped string field ("" when optional and absent)."""
    if value is None:
        if required:
            raise ReportError(f"{name} is missing")
        return ""
    if not isinstance(value, str):
        raise ReportError(f"{name} is not text")
    cleaned = value.strip()
    if required and not cleaned:
        raise ReportError(f"{name} is empty")
    if len(cleaned) > max_text:
        raise ReportError(f"{name} is longer than {max_text} characters")
    if any((ord(c) < 32 and c not in "\t\r\n") or 0xD800 <= ord(c) < 0xE000 for c in cleaned):
        raise ReportError(f"{name} holds control characters or lone surrogates")
    return cleaned.lower() if lower else cleaned


def count(value: object, name: str) -> int:
    """A non-negative integer field, given as a number (JSON) or digits (XML)."""
    if isinstance(value, bool):
        raise ReportError(f"{name} is not a count")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ReportError(f"{name} is not a count")
    return value


def ip(value: object, name: str, *, required: bool = True) -> str:
    """An IPv4 or IPv6 address in its canonical text form."""
    raw = text(value, name, required=required)
    if not raw:
        return ""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ReportError(f"{name} {raw[:64]!r} is not an IP address") from None


def domain(value: object, name: str) -> str:
    """A domain name as a lower-case A-label (the form the directory stores)."""
    raw = text(value, name, max_text=253)
    try:
        return normalise_domain(raw)
    except AddressError:
        raise ReportError(f"{name} {raw[:64]!r} is not a domain") from None


def date_range(begin: int, end: int) -> tuple[int, int]:
    if begin > end:
        raise ReportError("date range ends before it begins")
    return begin, end
