"""TXT lookups for DKIM, DMARC and ARC (checks/dkim_verify.py, dmarc.py, arc.py); SPF's resolver.

One rule for every caller: a name with no TXT record (NXDOMAIN, NODATA) is an answer (an
empty tuple); a timeout, SERVFAIL, REFUSED or an unusable resolver is `DnsTempError`, which
the checks report as `temperror` (RFC 8601 2.7) and never as a failure. A record split
into several character-strings (RFC 7208 3.3, RFC 6376 3.6.2.2: any key over 255 bytes,
e.g. RSA-2048) is joined back into one string. Lookups go to the server `outbound.resolver`
names (the system's when empty), with the checks' own short timeout.

Answers are cached per process for their TTL (at most `MAX_TTL`; a name with no record for
`NEGATIVE_TTL`), a bounded number of names, and lookups of one name that are already under
way are shared: the DMARC record of a big sender is asked once for a burst of its mail,
not once per message (resolvers rate-limit identical queries, and a burst of them can
time out). Temporary errors are never cached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from appliance.outbound.mx import make_resolver, parse_resolver

# A TXT answer: one joined string per record, in the order the server gave them.
TxtRecords = tuple[bytes, ...]
AsyncTxt = Callable[[str], Awaitable[TxtRecords]]
# dkimpy's `dnsfunc`: (b"sel._domainkey.example.org.", timeout=...) -> first record or None.
DnsFunc = Callable[..., bytes | None]

MAX_NAME = 253      # RFC 1035 2.3.4 (as text, without the root dot)
MAX_TTL = 3600.0    # seconds an answer is kept at most (records change: keys rotate)
NEGATIVE_TTL = 60.0  # seconds "no record" is kept
CACHE_NAMES = 10_000


class DnsTempError(Exception):
    """A lookup gave no answer (timeout, SERVFAIL, REFUSED, no resolver): try later."""


def normal_name(name: str | bytes) -> str:
    """`name` lower-cased without its root dot; raises ValueError for no valid name."""
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    text = text.strip().rstrip(".").lower()
    if not text or len(text) > MAX_NAME:
        raise ValueError(f"not a domain name: {text[:80]!r}")
    return text


def make_sync_resolver(spec: str, timeout: float) -> dns.resolver.Resolver:
    """A blocking resolver for `outbound.resolver` `spec` ("" = the system's) that gives up
    after `timeout` seconds per lookup (the blocking twin of `outbound.mx.make_resolver`).

    Raises:
        ValueError: a malformed `spec`.
    """
    server = parse_resolver(spec)
    if server is None:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:   # no /etc/resolv.conf: every lookup
            resolver = dns.resolver.Resolver(configure=False)   # fails (temperror); we start
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [server[0]]
        resolver.port = server[1]
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


def _joined(answer: dns.resolver.Answer) -> TxtRecords:
    return tuple(b"".join(rdata.strings) for rdata in answer)


class TxtLookup:
    """Asynchronous and blocking TXT lookups against one configured resolver."""

    def __init__(self, spec: str, timeout: float) -> None:
        """`spec` is an `outbound.resolver` value; `timeout` bounds each whole lookup.

        Raises:
            ValueError: a malformed `spec`.
        """
        self.spec = spec
        self.timeout = timeout
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._sync: dns.resolver.Resolver | None = None
        self._unusable = ""
        self._cache: OrderedDict[str, tuple[float, TxtRecords]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[TxtRecords]] = {}
        try:
            self._resolver = make_resolver(spec, timeout)   # a bad spec raises ValueError
        except dns.resolver.NoResolverConfiguration as exc:   # no /etc/resolv.conf
            self._unusable = f"no resolver: {exc}"
            return
        self._sync = make_sync_resolver(spec, timeout)
        self._sync.timeout = min(timeout, 5.0)

    async def txt(self, name: str) -> TxtRecords:
        """The TXT records at `name`; () when there are none.

        Raises:
            DnsTempError: no answer in time, a server failure, or no resolver.
        """
        if self._resolver is None:
            raise DnsTempError(self._unusable)
        try:
            key = normal_name(name)
        except ValueError:
            return ()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            self._cache.move_to_end(key)
            return cached[1]
        pending = self._pending.get(key)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(pending)
        future: asyncio.Future[TxtRecords] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            records = await self._lookup(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()          # retrieved: waiters see it, nobody else must
            raise
        else:
            future.set_result(records)
            return records
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]

    async def _lookup(self, key: str) -> TxtRecords:
        assert self._resolver is not None
        try:
            answer = await self._resolver.resolve(key + ".", "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, ValueError,
                dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel):
            self._remember(key, (), NEGATIVE_TTL)
            return ()
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        records = _joined(answer)
        self._remember(key, records, float(answer.rrset.ttl) if answer.rrset else 0.0)
        return records

    def _remember(self, key: str, records: TxtRecords, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = (time.monotonic() + min(ttl, MAX_TTL), records)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_NAMES:
            self._cache.popitem(last=False)

    def blocking(self, budget: float | None = None) -> DnsFunc:
        """A dkimpy-style `dnsfunc` (for code running in a thread, e.g. ARC verification)
        asking the same server, each lookup bounded by the timeout; with a `budget`, all its
        lookups together stop after that many seconds, later ones raise DnsTempError."""
        deadline = None if budget is None else time.monotonic() + budget
        resolver = self._sync

        def dnsfunc(name: bytes | str, timeout: float = 5.0) -> bytes | None:
            left = self.timeout if deadline is None else deadline - time.monotonic()
            if resolver is None or left <= 0:
                raise DnsTempError(self._unusable or "lookup time used up")
            try:
                answer = resolver.resolve(normal_name(name) + ".", "TXT", search=False,
                                          lifetime=min(left, self.timeout, timeout))
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, ValueError,
                    dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel):
                return None
            except dns.exception.DNSException as exc:
                raise DnsTempError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
            records = _joined(answer)
            return records[0] if records else None

        return dnsfunc


@dataclass
class CachedTxt:
    """A dkimpy `dnsfunc` that answers from lookups already made (no I/O in the thread).

    `answers` maps normal names to their records, or to the DnsTempError the lookup gave;
    a name not looked up is a temporary error (the caller chose not to spend time on it).
    """

    answers: dict[str, TxtRecords | DnsTempError]

    def __call__(self, name: bytes | str, timeout: float = 5.0) -> bytes | None:
        try:
            found = self.answers.get(normal_name(name))
        except ValueError:
            return None
        if found is None:
            raise DnsTempError("not looked up")
        if isinstance(found, DnsTempError):
            raise found
        # RFC 6376 3.6.2.2: several key records are ambiguous; like dkimpy, take the first.
        return found[0] if found else None
