"""The outbound DNS cache: answers kept for their TTL, bounded in size and in time.

dnspython's LRU cache honours each answer's TTL; for negative answers (NXDOMAIN, no data)
it uses the SOA's negative TTL as RFC 2308 5 says. We bound both: positive answers at
`MAX_TTL`, negative ones at `MAX_NEGATIVE_TTL` (RFC 2308 5 suggests 1 to 3 hours; a
typo'd domain fixed by its owner should start working within minutes). Failures (SERVFAIL,
timeouts) are never cached: they are retried at the next attempt.
"""

from __future__ import annotations

import time

import dns.resolver

MAX_ENTRIES = 10_000
MAX_TTL = 86_400.0
MAX_NEGATIVE_TTL = 300.0


class BoundedTtlCache(dns.resolver.LRUCache):
    """An LRU cache that shortens over-long TTLs (see the module docstring)."""

    def put(self, key: dns.resolver.CacheKey, value: dns.resolver.Answer) -> None:
        cap = MAX_NEGATIVE_TTL if value.rrset is None else MAX_TTL
        value.expiration = min(value.expiration, time.time() + cap)
        super().put(key, value)


def make_dns_cache(max_entries: int = MAX_ENTRIES) -> BoundedTtlCache:
    return BoundedTtlCache(max_entries)
