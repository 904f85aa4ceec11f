"""The blocking TXT lookup handed to dkimpy by code that runs in a worker thread (ARC chain
validation, checks/arc.py): `txt_lookup(resolver_spec, timeout)` gives a dkimpy `dnsfunc`.

One implementation serves every inbound check: this is a thin door to
`checks/auth_dns.TxtLookup` (the DKIM/DMARC checks' lookups), so ARC keys are asked of
the same server (`outbound.resolver`), with the same short timeout (`checks.dns_timeout`),
the same record joining (a key over 255 bytes comes as several strings) and the same rule:
no record is None, a timeout/SERVFAIL/REFUSED raises `auth_dns.DnsTempError`.
"""

from __future__ import annotations

from appliance.checks.auth_dns import DnsFunc, DnsTempError, TxtLookup

__all__ = ["DnsFunc", "DnsTempError", "txt_lookup"]


def txt_lookup(resolver_spec: str, timeout: float, *,
               budget: float | None = None) -> DnsFunc:
    """A dkimpy `dnsfunc` (`name: bytes, timeout=` -> the first TXT record, joined, or None).

    Args:
        resolver_spec: the `outbound.resolver` setting ("" = the system's resolver).
        timeout: seconds one lookup may take (`checks.dns_timeout`).
        budget: seconds all lookups of this function may take together (None: no bound);
            past it every lookup raises DnsTempError. Use one function per message.

    Raises:
        ValueError: a malformed `resolver_spec` (settings validation refuses it first).
    """
    return TxtLookup(resolver_spec, timeout).blocking(budget)
