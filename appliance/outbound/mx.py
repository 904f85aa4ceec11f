"""MX lookup: which hosts to try for a destination domain, in which order (RFC 5321 5.1).

`find_route` asks DNS (dnspython's async resolver, pointed at `outbound.resolver`) and
returns a `Route`: ordered hosts, or why there are none. A null MX (RFC 7505) and a domain
that does not exist are permanent; a failing or silent resolver is temporary. Ordering is a
pure function: lowest preference first, randomised among equal preferences (5.1).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

DEFAULT_DNS_PORT = 53
MAX_MX_RECORDS = 50      # more hosts than anyone tries; bounds what a hostile zone costs us


class RouteKind(enum.Enum):
    HOSTS = "hosts"            # try `hosts` in order
    NULL_MX = "null_mx"        # RFC 7505: the domain accepts no mail (permanent)
    NO_DOMAIN = "no_domain"    # NXDOMAIN (permanent)
    NO_ROUTE = "no_route"      # the domain exists but has no MX, A or AAAA (permanent)
    TEMPORARY = "temporary"    # SERVFAIL, timeout, refused: try again later


@dataclass(frozen=True)
class MxHost:
    """One mail host: its name (lower case, no trailing dot) and MX preference."""

    name: str
    preference: int


@dataclass(frozen=True)
class Route:
    """Where mail for `domain` goes, or why it cannot go anywhere (with `reason`)."""

    domain: str
    kind: RouteKind
    hosts: tuple[MxHost, ...] = ()
    implicit: bool = False     # RFC 5321 5.1: no MX record, the domain itself is the host
    reason: str = ""


@dataclass(frozen=True)
class Addresses:
    """A host's addresses (IPv4 first, then IPv6) and a temporary lookup error, if any."""

    addresses: tuple[str, ...]
    error: str | None = None


def parse_resolver(spec: str) -> tuple[str, int] | None:
    """`outbound.resolver` as (address, port); None for "" (the system resolver).

    Accepts `127.0.0.1`, `127.0.0.1:5353`, `::1` and `[::1]:5353`.

    Raises:
        ValueError: not an IP address with an optional port from 1 to 65535.
    """
    text = spec.strip()
    if not text:
        return None
    host, port = text, str(DEFAULT_DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    address = ipaddress.ip_address(host)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid resolver port in {spec!r}")
    return str(address), int(port)


def make_resolver(spec: str, timeout: float) -> dns.asyncresolver.Resolver:
    """A resolver for `spec` (see `parse_resolver`) whose lookups give up after `timeout`.

    Raises:
        ValueError: a malformed `spec`.
        dns.resolver.NoResolverConfiguration: "" and no usable /etc/resolv.conf.
    """
    server = parse_resolver(spec)
    if server is None:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [server[0]]
        resolver.port = server[1]
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 5.0)
    return resolver


def order_mx(records: Iterable[tuple[int, str]], rng: random.Random) -> list[MxHost]:
    """Hosts by preference, shuffled among equals (RFC 5321 5.1); null targets dropped.

    Names are lower-cased without the trailing dot; a name listed twice keeps its best
    preference.
    """
    best: dict[str, int] = {}
    for preference, exchange in records:
        name = exchange.rstrip(".").lower()
        if name and preference < best.get(name, preference + 1):
            best[name] = preference
    hosts = [MxHost(name, preference) for name, preference in best.items()]
    rng.shuffle(hosts)
    return sorted(hosts, key=lambda host: host.preference)   # stable: keeps the shuffle


def is_null_mx(records: list[tuple[int, str]]) -> bool:
    """RFC 7505 3: the domain's only MX targets are "." (the root)."""
    return bool(records) and all(exchange.rstrip(".") == "" for _, exchange in records)


async def find_route(domain: str, resolver: dns.asyncresolver.Resolver,
                     rng: random.Random) -> Route:
    """Look up the MX hosts of `domain` (an A-label domain), or why there are none."""
    try:
        answer = await resolver.resolve(domain, "MX", search=False)
    except dns.resolver.NXDOMAIN:
        return Route(domain, RouteKind.NO_DOMAIN, reason="NXDOMAIN")
    except dns.resolver.NoAnswer:
        return await _implicit_route(domain, resolver)
    except dns.exception.DNSException as exc:
        return Route(domain, RouteKind.TEMPORARY, reason=_reason(exc))
    records = [(r.preference, r.exchange.to_text()) for r in answer][:MAX_MX_RECORDS]
    if is_null_mx(records):
        return Route(domain, RouteKind.NULL_MX, reason="null MX")
    hosts = order_mx(records, rng)
    if not hosts:
        return Route(domain, RouteKind.NULL_MX, reason="null MX")
    return Route(domain, RouteKind.HOSTS, hosts=tuple(hosts))


async def _implicit_route(domain: str, resolver: dns.asyncresolver.Resolver) -> Route:
    """RFC 5321 5.1: no MX records, so the domain's own A/AAAA is an MX of preference 0."""
    found = await host_addresses(domain, resolver)
    if found.addresses:
        return Route(domain, RouteKind.HOSTS, hosts=(MxHost(domain, 0),), implicit=True)
    if found.error is not None:
        return Route(domain, RouteKind.TEMPORARY, reason=found.error)
    return Route(domain, RouteKind.NO_ROUTE, reason="no MX, A or AAAA record")


async def host_addresses(host: str, resolver: dns.asyncresolver.Resolver) -> Addresses:
    """The IPv4 then IPv6 addresses of `host` (both looked up at once)."""
    (v4, v4_error), (v6, v6_error) = await asyncio.gather(
        _lookup(host, "A", resolver), _lookup(host, "AAAA", resolver))
    return Addresses(tuple(v4 + v6), v4_error or v6_error)


async def _lookup(name: str, rdtype: str,
                  resolver: dns.asyncresolver.Resolver) -> tuple[list[str], str | None]:
    try:
        answer = await resolver.resolve(name, rdtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], None
    except dns.exception.DNSException as exc:
        return [], _reason(exc)
    return [record.to_text() for record in answer], None


def _reason(exc: BaseException) -> str:
    """A short, one-line description of a DNS failure for the reply text and the log."""
    if isinstance(exc, dns.exception.Timeout):
        return "timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "server failure (SERVFAIL or refused)"
    return type(exc).__name__
