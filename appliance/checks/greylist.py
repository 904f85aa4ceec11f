"""The greylisting check ("greylist"): a message from an unknown (client network, sender,
recipient) triplet gets `451 4.7.1` and is accepted when the client retries after
`greylist.delay` seconds, as real MTAs do and most spam bots do not.

Decided at the end of DATA rather than at RCPT, because only then has the authentication
check run: a sender domain that SPF or DKIM proves (`context.auth.authenticated_domains`)
and whose mail we accepted before skips greylisting. A passed retry allowlists the (client
network, sender domain) for `greylist.allow_days`, so one provider's later mail is not held
again. Client networks are the /24 of an IPv4 and the /64 of an IPv6 address: big senders
retry from another address of the same pool. State lives in greylist.db (greylist_store.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
import time
from collections.abc import Callable

from appliance.checks.context import MessageContext
from appliance.checks.greylist_store import GreylistStore, Outcome, Timing, Triplet
from appliance.checks.result import CheckResult, Verdict
from appliance.core import log
from appliance.settings import Settings
from appliance.smtp import replies

NAME = "greylist"
PRUNE_INTERVAL = 600.0     # seconds between sweeps of expired rows (per process)
DAY = 86_400


def client_network(ip: str) -> str:
    """The network greylisting keys on: the /24 of IPv4, the /64 of IPv6 (an IPv4-mapped
    IPv6 address counts as its IPv4); the text itself if it is not an address."""
    try:
        address = ipaddress.ip_address(ip.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return ip.strip().lower()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def triplets(context: MessageContext) -> tuple[Triplet, ...]:
    """One triplet per envelope recipient (addresses compared without case)."""
    network = client_network(context.client_ip)
    sender = context.mail_from.lower()
    recipients = dict.fromkeys(r.lower() for r in context.recipients)
    return tuple(Triplet(network, sender, r) for r in recipients)


def sender_domain(mail_from: str) -> str:
    """The envelope sender's domain, lower case; "" for the null sender."""
    return mail_from.rpartition("@")[2].lower() if "@" in mail_from else ""


class GreylistCheck:
    """Defers first attempts from unknown triplets; see the module docstring."""

    name = NAME

    def __init__(self, store: GreylistStore, timing: Timing,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._timing = timing
        self._clock = clock
        self._next_prune = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> GreylistCheck:
        timing = Timing(delay=settings.get_int("greylist.delay"),
                        expire=settings.get_int("greylist.expire"),
                        allow_for=settings.get_int("greylist.allow_days") * DAY)
        return cls(GreylistStore.in_directory(settings.data_dir), timing)

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
        items = triplets(context)
        if not items:
            return CheckResult(NAME, Verdict.ACCEPT, reason="no recipients")
        authenticated = context.auth.authenticated_domains if context.auth else frozenset()
        now = self._clock()
        try:
            outcome = await asyncio.to_thread(self._decide, items, context, authenticated,
                                              now)
        except sqlite3.Error as exc:     # fail open: greylisting only ever delays spam
            log.error("greylist.store_failed", exc, queue_id=context.queue_id)
            return CheckResult(NAME, Verdict.ACCEPT, reason=f"greylist.db failed: {exc}")
        if outcome.passed:
            return CheckResult(NAME, Verdict.ACCEPT, reason=outcome.why)
        log.event("greylist.deferred", queue_id=context.queue_id, client=context.client_ip,
                  sender=context.mail_from, network=items[0].network, reason=outcome.why)
        return CheckResult(NAME, Verdict.TEMPFAIL, replies.POLICY_DEFERRED, reason=outcome.why)

    def _decide(self, items: tuple[Triplet, ...], context: MessageContext,
                authenticated: frozenset[str], now: float) -> Outcome:
        """In a worker thread: prune now and then, then decide."""
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL
            self._store.prune(now, self._timing)
        return self._store.decide(items, sender_domain(context.mail_from), authenticated,
                                  now, self._timing)
