"""The DNSBL/DNSWL check ("dnsbl"): the client address in IP lists and the domains of the
message's URLs in URI lists (RFC 5782), all queried at once.

Listings only add spam points to `context.score_parts` (the spam check sums them; an allow
list adds negative points), except that a listing in a zone named in `dnsbl.reject_zones`
rejects the message with a generic `550 5.7.1` unless an allow list vouches for the client.
Lookups time out after `dnsbl.timeout` seconds and fail open: an unreachable list adds
nothing. Answers are cached for their TTL (dnsbl_lookup.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import dns.asyncresolver
import dns.resolver

from appliance.checks.context import MessageContext
from appliance.checks.dnsbl_lookup import DnsblResolver, Lookup
from appliance.checks.dnsbl_urls import url_domains
from appliance.checks.dnsbl_zones import (
    Zone,
    is_listing,
    parse_zone_names,
    parse_zones,
    reversed_address,
)
from appliance.checks.result import CheckResult, Verdict
from appliance.core import log
from appliance.outbound.mx import make_resolver
from appliance.settings import Settings
from appliance.smtp import replies

NAME = "dnsbl"


@dataclass(frozen=True)
class Hit:
    """One listing: the zone, what was looked up (an address or a domain), the answer."""

    zone: Zone
    subject: str
    answer: str
    uri: bool

    @property
    def rule(self) -> str:
        """The spam-score rule name (the spam check's X-Spam-Status lists it):
        `DNSBL_<zone>`, `DNSWL_<zone>` (an allow list) or `URIBL_<zone>`."""
        kind = "URIBL" if self.uri else "DNSWL" if self.zone.allows else "DNSBL"
        return f"{kind}_{self.zone.name}"


@dataclass(frozen=True)
class DnsblConfig:
    """The `dnsbl.*` settings."""

    ip_zones: tuple[Zone, ...]
    uri_zones: tuple[Zone, ...]
    max_domains: int = 10
    max_scan_bytes: int = 256 * 1024


class DnsblCheck:
    """Looks the client and the URL domains up in the configured lists."""

    name = NAME

    def __init__(self, config: DnsblConfig, resolver: DnsblResolver) -> None:
        self._config = config
        self._resolver = resolver

    @classmethod
    def from_settings(cls, settings: Settings) -> DnsblCheck:
        reject = parse_zone_names(settings.get_str("dnsbl.reject_zones"))
        config = DnsblConfig(
            parse_zones(settings.get_str("dnsbl.ip_zones"), reject),
            parse_zones(settings.get_str("dnsbl.uri_zones"), reject),
            settings.get_int("dnsbl.max_uri_domains"),
            settings.get_int("dnsbl.max_scan_bytes"))
        timeout = settings.get_int("dnsbl.timeout_ms") / 1000
        resolver: dns.asyncresolver.Resolver | None = None
        try:
            resolver = make_resolver(settings.get_str("outbound.resolver"), timeout)
        except dns.resolver.NoResolverConfiguration:     # fail open, and say so once
            log.event("dnsbl.no_resolver", logging.WARNING,
                      reason="outbound.resolver is empty and /etc/resolv.conf has no server")
        return cls(config, DnsblResolver(resolver, timeout,
                                         settings.get_int("dnsbl.cache_entries")))

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
        queries = await self._queries(message, context.client_ip)
        lookups = await asyncio.gather(*(self._resolver.lookup(q) for _, _, _, q in queries))
        hits: list[Hit] = []
        failed: list[str] = []
        for (zone, subject, uri, _), found in zip(queries, lookups, strict=True):
            failed += [f"{zone.name}: {found.error}"] if found.error else []
            hits.extend(_hits(zone, subject, uri, found))
        for hit in hits:
            context.score_parts.append((hit.rule, hit.zone.points))
            log.event("dnsbl.listed", queue_id=context.queue_id, client=context.client_ip,
                      zone=hit.zone.name, subject=hit.subject, answer=hit.answer,
                      points=hit.zone.points)
        reason = _summary(hits, failed, len(queries))
        rejecting = [h for h in hits if h.zone.reject]
        if rejecting and not any(h.zone.allows for h in hits):
            return CheckResult(NAME, Verdict.REJECT, replies.POLICY_BLOCKED,
                               reason=f"listed in {rejecting[0].zone.name}; {reason}")
        return CheckResult(NAME, Verdict.ACCEPT, reason=reason)

    async def _queries(self, message: bytes, client_ip: str
                       ) -> list[tuple[Zone, str, bool, str]]:
        """(zone, subject, is-URI, query name) for every lookup this message needs; the
        MIME parsing for URLs runs in a worker thread, off the event loop."""
        queries: list[tuple[Zone, str, bool, str]] = []
        reversed_ip = reversed_address(client_ip)
        if reversed_ip is not None:
            queries += [(z, client_ip, False, f"{reversed_ip}.{z.name}")
                        for z in self._config.ip_zones]
        if self._config.uri_zones:
            domains = await asyncio.to_thread(url_domains, message,
                                              self._config.max_domains,
                                              self._config.max_scan_bytes)
            queries += [(z, d, True, f"{d}.{z.name}")
                        for d in domains for z in self._config.uri_zones]
        return queries


def _hits(zone: Zone, subject: str, uri: bool, found: Lookup) -> list[Hit]:
    """The listing in one answer (at most one hit per zone and subject)."""
    listed = [a for a in found.answers if is_listing(a)]
    return [Hit(zone, subject, listed[0], uri)] if listed else []


def _summary(hits: list[Hit], failed: list[str], queries: int) -> str:
    """The log's reason: which lists matched, which lookups failed (and so added 0)."""
    listed = ", ".join(f"{h.rule}({h.subject})={h.answer}" for h in hits) or "no listing"
    why = f" ({', '.join(sorted(set(failed)))})" if failed else ""
    return f"{listed}; {queries} lookups, {len(failed)} failed{why}"
