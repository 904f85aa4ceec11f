"""DNSBL queries with a bounded cache: A lookups that time out fast and fail open, whose
answers (and NXDOMAIN) are kept for the TTL the list gave, in a least-recently-used table.

A failure (timeout, SERVFAIL, REFUSED) is never cached and means "not listed": a DNS list
only adds spam points, so it must not hold up or refuse mail when it is unreachable.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rdatatype
import dns.resolver

MAX_TTL = 3600.0            # keep no answer longer, whatever the list says
NEGATIVE_TTL = 300.0        # NXDOMAIN without a usable SOA
MAX_NEGATIVE_TTL = 900.0    # RFC 2308 5: negative answers are kept for the SOA minimum


@dataclass(frozen=True)
class Lookup:
    """One query's outcome: the A answers (empty: not listed), or the failure's name."""

    answers: tuple[str, ...] = ()
    error: str = ""
    cached: bool = False


class DnsblResolver:
    """Asks one resolver for A records, with a TTL cache of at most `max_entries` names."""

    def __init__(self, resolver: dns.asyncresolver.Resolver | None, timeout: float,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._resolver = resolver
        self._timeout = timeout
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()

    async def lookup(self, name: str) -> Lookup:
        """The A answers for `name` (an absolute name without the final dot)."""
        cached = self._cached(name)
        if cached is not None:
            return Lookup(cached, cached=True)
        if self._resolver is None:
            return Lookup(error="no resolver configured")
        try:
            answers, ttl = await asyncio.wait_for(self._query(name), self._timeout)
        except (TimeoutError, dns.exception.Timeout):
            return Lookup(error="timeout")
        except dns.exception.DNSException as exc:
            return Lookup(error=type(exc).__name__)
        self._store(name, answers, ttl)
        return Lookup(answers)

    def __len__(self) -> int:
        return len(self._cache)

    async def _query(self, name: str) -> tuple[tuple[str, ...], float]:
        assert self._resolver is not None
        try:
            answer = await self._resolver.resolve(name + ".", "A", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
            return (), _negative_ttl(exc)
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else NEGATIVE_TTL
        return tuple(sorted(r.to_text() for r in answer)), min(ttl, MAX_TTL)

    def _cached(self, name: str) -> tuple[str, ...] | None:
        entry = self._cache.get(name)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._cache[name]
            return None
        self._cache.move_to_end(name)
        return entry[1]

    def _store(self, name: str, answers: tuple[str, ...], ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[name] = (self._clock() + ttl, answers)
        self._cache.move_to_end(name)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)


def _negative_ttl(exc: dns.exception.DNSException) -> float:
    """RFC 2308 5: the SOA's TTL and MINIMUM, the smaller, from the negative response."""
    responses: dict[object, dns.message.Message] = {}
    if isinstance(exc, dns.resolver.NXDOMAIN):
        found = exc.kwargs.get("responses")
        responses = dict(found) if isinstance(found, dict) else {}
    elif isinstance(exc, dns.resolver.NoAnswer):
        response = exc.kwargs.get("response")
        if isinstance(response, dns.message.Message):
            responses = {None: response}
    for response in responses.values():
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                minimum = float(getattr(rrset[0], "minimum", NEGATIVE_TTL))
                return min(float(rrset.ttl), minimum, MAX_NEGATIVE_TTL)
    return NEGATIVE_TTL
