"""One delivery attempt: one message to the recipients of one destination domain.

`deliver` looks up the route (MX, implicit MX, null MX), the domain's MTA-STS policy, then
tries MX addresses in order: a connection failure, a refused greeting or a TLS failure moves
on to the next address, and so does every recipient a peer deferred (a backup MX may take
it), up to `outbound.max_mx_addresses` connections. It returns one result per recipient;
the runner decides about retries and bounces. Nothing here raises for a delivery problem.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

from appliance.core import log
from appliance.core.addresses import AddressError, normalise_domain
from appliance.outbound import delivery_replies as dr
from appliance.outbound.client import SessionError, SmtpSession, Timeouts
from appliance.outbound.connections import SessionKey, SessionPool
from appliance.outbound.mtasts import Mode, Policy
from appliance.outbound.mtasts_fetch import StsConfig, current_policy
from appliance.outbound.mx import MxHost, Route, RouteKind, find_route, host_addresses
from appliance.outbound.mx import make_resolver as _make_resolver
from appliance.outbound.smtp_client_transaction import with_details
from appliance.outbound.types import OutboundEnvelope, Outcome, RecipientResult
from appliance.settings import Settings
from appliance.tls.contexts import shared_client_context

_ROUTE_REPLIES = {
    RouteKind.NULL_MX: (dr.NULL_MX, Outcome.FAILED),
    RouteKind.NO_DOMAIN: (dr.NO_SUCH_DOMAIN, Outcome.FAILED),
    RouteKind.NO_ROUTE: (dr.NO_ROUTE, Outcome.FAILED),
    RouteKind.TEMPORARY: (dr.DNS_TEMPORARY, Outcome.DEFERRED),
}


@dataclass(frozen=True)
class TransportConfig:
    """What one delivery attempt needs to know (built from the `outbound.*` settings)."""

    helo_name: str
    mta_sts_dir: Path
    port: int = 25
    resolver: str = ""
    dns_timeout: float = 20.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_addresses: int = 5
    ca_file: Path | None = None
    mta_sts: bool = True
    mta_sts_port: int = 443
    mta_sts_timeout: float = 30.0
    rng: random.Random = field(default_factory=random.SystemRandom, compare=False)
    pool: SessionPool | None = field(default=None, compare=False)     # connection reuse
    dns_cache: dns.resolver.CacheBase | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportConfig:
        def seconds(key: str) -> float:
            return float(settings.get_int(f"outbound.{key}_timeout"))

        ca_file = settings.get_str("outbound.ca_file")
        return cls(
            helo_name=settings.get_str("server.hostname"),
            mta_sts_dir=settings.data_dir / "mta-sts",
            port=settings.get_int("outbound.port"),
            resolver=settings.get_str("outbound.resolver"),
            dns_timeout=seconds("dns"),
            timeouts=Timeouts(*(seconds(k) for k in (
                "connect", "greeting", "mail", "rcpt", "data_init", "data_block",
                "data_end"))),
            max_addresses=settings.get_int("outbound.max_mx_addresses"),
            ca_file=settings.data_path("outbound.ca_file") if ca_file else None,
            mta_sts=settings.get_bool("outbound.mta_sts"),
            mta_sts_port=settings.get_int("outbound.mta_sts_port"),
            mta_sts_timeout=seconds("mta_sts"),
        )


class TlsPlan(enum.Enum):
    """How a connection uses STARTTLS (from the MTA-STS mode, RFC 8461 5)."""

    REQUIRED = "required"        # enforce: offered, handshake and verification must succeed
    VERIFY = "verify"            # testing: verify; on failure log and fall back
    OPPORTUNISTIC = "opportunistic"   # no policy: encrypt if offered, unverified is fine
    PLAIN = "plain"              # fallback after a failed opportunistic handshake


class MailLoopError(Exception):
    """The peer greets with our own name: mail would come back to us."""


async def deliver(envelope: OutboundEnvelope, message: bytes, *,
                  config: TransportConfig) -> list[RecipientResult]:
    """Try once to deliver `message` to the recipients of one domain in `envelope`.

    Returns one result per recipient, in envelope order: DELIVERED, DEFERRED (retry later)
    or FAILED (bounce), each with the reply that decided it.
    """
    if not envelope.recipients:
        return []
    domain_text = envelope.recipients[0].address.rpartition("@")[2]
    try:
        domain = normalise_domain(domain_text)
        resolver = _make_resolver(config.resolver, config.dns_timeout)
        resolver.cache = config.dns_cache
    except AddressError:
        return _all(envelope, dr.render(dr.NO_SUCH_DOMAIN, domain=domain_text), Outcome.FAILED)
    except (ValueError, dns.exception.DNSException) as exc:
        reason = f"resolver unusable: {exc}"
        return _all(envelope, dr.render(dr.DNS_TEMPORARY, domain=domain_text, reason=reason),
                    Outcome.DEFERRED)
    route = await find_route(domain, resolver, config.rng)
    if route.kind is not RouteKind.HOSTS:
        return _route_failure(envelope, route)
    policy = await _policy(domain, resolver, config)
    return await _Attempt(envelope, message, config, domain, resolver, policy).run(route.hosts)


def _all(envelope: OutboundEnvelope, reply: str, outcome: Outcome) -> list[RecipientResult]:
    return [RecipientResult(r.address, outcome, reply) for r in envelope.recipients]


def _route_failure(envelope: OutboundEnvelope, route: Route) -> list[RecipientResult]:
    template, outcome = _ROUTE_REPLIES[route.kind]
    reply = dr.render(template, domain=route.domain, reason=route.reason)
    log.event("delivery_route_failed", queue_id=envelope.queue_id, domain=route.domain,
              reason=route.reason, outcome=outcome.value)
    return _all(envelope, reply, outcome)


async def _policy(domain: str, resolver: dns.asyncresolver.Resolver,
                  config: TransportConfig) -> Policy | None:
    if not config.mta_sts:
        return None
    sts = StsConfig(config.mta_sts_port, config.mta_sts_timeout, config.ca_file,
                    config.mta_sts_dir)
    policy = await current_policy(domain, resolver, sts, time.time())
    return None if policy is None or policy.mode is Mode.NONE else policy


class _Attempt:
    """The state of one attempt: which recipients are still open and the last error."""

    def __init__(self, envelope: OutboundEnvelope, message: bytes, config: TransportConfig,
                 domain: str, resolver: dns.asyncresolver.Resolver,
                 policy: Policy | None) -> None:
        self.envelope = envelope
        self.message = message
        self.config = config
        self.domain = domain
        self.resolver = resolver
        self.policy = policy
        self.results: dict[int, RecipientResult] = {}
        self.open: list[int] = list(range(len(envelope.recipients)))
        self.last_error = dr.render(dr.NO_MX_ADDRESS, domain=domain)
        self.connections = 0

    async def run(self, hosts: tuple[MxHost, ...]) -> list[RecipientResult]:
        try:
            for host in self._allowed(hosts):
                await self._try_host(host)
                if not self.open or self.connections >= self.config.max_addresses:
                    break
        except Exception as exc:    # a bug must not lose what was already settled
            log.error("delivery_internal_error", exc, queue_id=self.envelope.queue_id)
            self.last_error = dr.INTERNAL_ERROR     # unknown = temporary (practice 7)
        for index in self.open:
            self.results.setdefault(index, RecipientResult(
                self.envelope.recipients[index].address, Outcome.DEFERRED, self.last_error))
        return [self.results[i] for i in range(len(self.envelope.recipients))]

    def _allowed(self, hosts: tuple[MxHost, ...]) -> list[MxHost]:
        """RFC 8461 4.1: under `enforce` only MX hosts matching the policy are used."""
        if self.policy is None:
            return list(hosts)
        matching = [h for h in hosts if self.policy.allows(h.name)]
        if len(matching) < len(hosts):
            log.event("mta_sts_mx_mismatch", domain=self.domain, mode=self.policy.mode.value,
                      hosts=[h.name for h in hosts if h not in matching])
        if self.policy.mode is Mode.TESTING:
            return list(hosts)
        if not matching:
            self.last_error = dr.render(dr.STS_NO_MATCHING_MX, domain=self.domain,
                                        hosts=", ".join(h.name for h in hosts))
        return matching

    async def _try_host(self, host: MxHost) -> None:
        found = await host_addresses(host.name, self.resolver)
        if not found.addresses:
            if found.error is not None:
                self.last_error = dr.render(dr.DNS_TEMPORARY, domain=host.name,
                                            reason=found.error)
            return
        for address in found.addresses:
            if not self.open or self.connections >= self.config.max_addresses:
                return
            self.connections += 1
            await self._try_address(host.name, address)

    async def _try_address(self, host: str, address: str) -> None:
        remote = f"{host}[{address}]"
        key = SessionKey(self.domain, host, address,
                         self.policy.mode.value if self.policy else "none")
        pooled = self.config.pool.take(key) if self.config.pool is not None else None
        if pooled is not None and await self._send(pooled[0], key, pooled[1], address):
            return
        try:
            session = await self._open(host, address, remote)
        except SessionError as err:
            self.last_error = err.reply
            log.event("delivery_connection_failed", queue_id=self.envelope.queue_id,
                      remote=remote, kind=err.kind, reply=err.reply)
            return
        except MailLoopError:
            self._settle_open(dr.render(dr.MAIL_LOOP, domain=self.domain, remote=remote),
                              Outcome.FAILED)
            return
        await self._send(session, key, 0, address)

    async def _send(self, session: SmtpSession, key: SessionKey, uses: int,
                    address: str) -> bool:
        """One transaction for the open recipients; the session goes back to the pool or is
        closed. False (nothing recorded) when a reused session turned out dead before the
        peer could have taken the message: the caller then connects afresh."""
        subset = dataclasses.replace(
            self.envelope, recipients=tuple(self.envelope.recipients[i] for i in self.open))
        try:
            results = await session.send(subset, self.message)
        except SessionError:        # only RSET before MAIL raises: nothing was sent
            if uses:
                return False
            raise
        uncertain = set(session.uncertain)
        if (uses and not session.usable and not uncertain
                and all(r.outcome is Outcome.DEFERRED for r in results)):
            log.event("delivery_reuse_stale", queue_id=self.envelope.queue_id,
                      remote=session.remote, uses=uses)
            return False
        if self.config.pool is not None and session.usable and not uncertain:
            self.config.pool.give(key, session, uses + 1)
        else:
            await session.quit()
        extra = {"remote_ip": address, "tls": session.tls.get("tls", "none"),
                 "mta_sts": self.policy.mode.value if self.policy else "none"}
        self._record(with_details(results, **extra), uncertain)
        log.event("delivery_session", queue_id=self.envelope.queue_id, remote=session.remote,
                  tls=extra["tls"], mta_sts=extra["mta_sts"], reused=uses,
                  outcomes=[r.outcome.value for r in results])
        return True

    def _record(self, results: list[RecipientResult], uncertain: set[str]) -> None:
        """Keep each result; deferred recipients stay open for the next MX unless the peer
        may already have the message (then a second copy would be a duplicate)."""
        still_open: list[int] = []
        for index, result in zip(self.open, results, strict=True):
            self.results[index] = result
            if result.outcome is Outcome.DEFERRED and result.address not in uncertain:
                still_open.append(index)
        self.open = still_open

    def _settle_open(self, reply: str, outcome: Outcome) -> None:
        for index in self.open:
            self.results[index] = RecipientResult(
                self.envelope.recipients[index].address, outcome, reply)
        self.open = []

    # -- connecting with the TLS the policy asks for -----------------------------------------

    async def _open(self, host: str, address: str, remote: str) -> SmtpSession:
        """A greeted, EHLO'd (and where possible encrypted) session, with fallbacks:
        testing falls back from verified to unverified TLS, and a failed opportunistic
        handshake to plaintext (as Postfix does), each on a fresh connection."""
        plan = {None: TlsPlan.OPPORTUNISTIC, Mode.TESTING: TlsPlan.VERIFY,
                Mode.ENFORCE: TlsPlan.REQUIRED}[self.policy.mode if self.policy else None]
        while True:
            try:
                return await self._connect(host, address, remote, plan)
            except SessionError as err:
                if err.kind not in ("tls", "tls_verify") or plan is TlsPlan.REQUIRED:
                    raise
                log.event("delivery_tls_fallback", queue_id=self.envelope.queue_id,
                          remote=remote, plan=plan.value, reply=err.reply,
                          mta_sts_testing=plan is TlsPlan.VERIFY)
                plan = (TlsPlan.OPPORTUNISTIC if plan is TlsPlan.VERIFY else TlsPlan.PLAIN)

    async def _connect(self, host: str, address: str, remote: str,
                       plan: TlsPlan) -> SmtpSession:
        config = self.config
        session = await SmtpSession.connect(address, config.port, remote=remote,
                                            timeouts=config.timeouts)
        caps = await session.hello(config.helo_name)
        if caps.name.lower() == config.helo_name.lower():
            await session.close()
            raise MailLoopError(remote)
        if plan is TlsPlan.PLAIN:
            return session
        if not caps.has("STARTTLS"):
            return await self._no_starttls(session, plan, remote)
        try:
            context = shared_client_context(verify=plan is not TlsPlan.OPPORTUNISTIC,
                                     ca_file=config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            await session.close()
            reason = f"outbound.ca_file unusable: {exc}"
            raise SessionError(dr.render(dr.TLS_FAILED, remote=remote, reason=reason), "tls",
                               reason) from exc
        try:
            await session.starttls(context, host, config.helo_name)
        except SessionError as err:
            if plan is TlsPlan.REQUIRED:
                reply = dr.render(dr.STS_TLS_FAILED, domain=self.domain, remote=remote,
                                  reason=err.reason)
                raise SessionError(reply, err.kind, err.reason) from err
            raise
        session.tls["tls_verified"] = "true" if plan is not TlsPlan.OPPORTUNISTIC else "false"
        return session

    async def _no_starttls(self, session: SmtpSession, plan: TlsPlan,
                           remote: str) -> SmtpSession:
        if plan is TlsPlan.REQUIRED:
            await session.close()
            raise SessionError(dr.render(dr.STS_NO_STARTTLS, domain=self.domain,
                                         remote=remote), "tls_missing")
        if plan is TlsPlan.VERIFY:
            log.event("mta_sts_testing_no_starttls", queue_id=self.envelope.queue_id,
                      remote=remote, domain=self.domain)
        return session
