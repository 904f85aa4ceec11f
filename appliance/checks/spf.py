"""Inbound SPF (RFC 7208): evaluating MAIL FROM (or HELO for the null sender) on the MX.

pyspf does the record parsing, macro expansion, processing limits and mechanism matching;
this module owns the edges: pyspf's DNS goes to the configured resolver (`outbound.resolver`)
with a per-lookup timeout and an overall time limit, DNS failures become `temperror`, and
anything pyspf raises unexpectedly becomes a defined `temperror` too ("unknown errors are
temporary"). pyspf is synchronous, so `SpfChecker.check` runs it in a small thread pool.

Identity: we evaluate MAIL FROM, and the HELO identity instead for the null reverse-path
(RFC 7208 2.4). RFC 7208 2.3 also recommends checking HELO separately; we do not: the one
outcome feeds DMARC, which uses the MAIL FROM result (RFC 7489 4.1), and a lone HELO result
would decide nothing here. Create one `SpfChecker` per engine: it owns a thread pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.resolver
import spf  # type: ignore[import-untyped]  # pyspf ships no type information

from appliance.checks.auth_dns import make_sync_resolver
from appliance.core import log
from appliance.settings import Settings

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
DEFAULT_TIME_LIMIT = 20.0    # RFC 7208 4.6.4: a limit on check_host() SHOULD allow >= 20 s
MAX_PARALLEL = 8             # SPF evaluations running at once (threads); others queue
MAX_TTL = 3600.0             # seconds an answer is kept at most
NEGATIVE_TTL = 60.0          # seconds "no such record" is kept
MAX_EXPLANATION = 200        # characters of an explanation kept for the log
# pyspf's pre-RFC 7208 result names (RFC 4408 drafts) mapped to the RFC's.
_LEGACY = {"unknown": "permerror", "error": "temperror"}
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.?)+")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")

# One DNS answer in pyspf's form: ((name, type), value) pairs; TXT values are tuples of byte
# strings (one per character-string, RFC 7208 3.3 glues them), A/AAAA values address text,
# MX values (preference, exchange), PTR values the target name.
DnsAnswer = list[tuple[tuple[str, str], Any]]
# A DNS lookup as pyspf calls it: (name, type, seconds it may take) -> answer.
Lookup = Callable[[str, str, float], DnsAnswer]


@dataclass(frozen=True)
class SpfOutcome:
    """The SPF result for one message.

    Attributes:
        result: pass, fail, softfail, neutral, none, temperror or permerror (RFC 7208 2.6).
        domain: the domain evaluated (MAIL FROM's, or HELO's for the null sender).
        scope: "mailfrom" or "helo".
        explanation: why, for the log only (it may come from the sender's DNS: never put it
            in an SMTP reply or a header).
        identity: the whole identity checked (the MAIL FROM address, or the HELO name).
    """

    result: str
    domain: str
    scope: str
    explanation: str
    identity: str = ""

    @property
    def resinfo(self) -> str:
        """RFC 8601 resinfo (2.2, 2.7.2): `spf=pass smtp.mailfrom=user@example.org` or
        `spf=none smtp.helo=mx.example.org`; values that are no address or domain are quoted,
        with '"', '\\' and ';' dropped and other characters than printable ASCII shown as
        '?' (a resinfo never carries ';' or line breaks)."""
        return f"spf={self.result} smtp.{self.scope}={_pvalue(self.identity or self.domain)}"


def _pvalue(identity: str) -> str:
    """An RFC 8601 pvalue for `identity`: `local@domain` or `domain` when they are plain,
    else a quoted-string of it made safe."""
    local, at, domain = identity.rpartition("@")
    if _DOMAIN.fullmatch(domain) and (not at or _DOT_ATOM.fullmatch(local)):
        return identity
    if at and _DOMAIN.fullmatch(domain):
        return domain                      # RFC 8601 2.2: a pvalue may be a domain alone
    return '"' + _UNPRINTABLE.sub("?", re.sub(r'["\\;]', "", identity)) + '"'


def clean_explanation(text: str) -> str:
    """An explanation fit for one log field: printable ASCII, at most MAX_EXPLANATION."""
    return _UNPRINTABLE.sub("?", text)[:MAX_EXPLANATION]


# -- DNS: pyspf's lookup function, pointed at our resolver ---------------------------------

class _Pending:
    """One lookup under way that other threads wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: DnsAnswer = []
        self.error: Exception | None = None


class SharedLookup:
    """A `Lookup` whose answers are kept for their TTL (`MAX_TTL` at most; no record for
    `NEGATIVE_TTL`) for a bounded number of names, and whose identical lookups under way
    at once are made once: a burst of mail from one domain asks its SPF records once
    (resolvers rate-limit identical queries; a burst of them can time out). Errors are
    never kept. Thread-safe: pyspf runs in worker threads."""

    def __init__(self, resolver: dns.resolver.Resolver, max_names: int = 10_000) -> None:
        self._resolver = resolver
        self._max_names = max_names
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[float, DnsAnswer]] = OrderedDict()
        self._pending: dict[tuple[str, str], _Pending] = {}

    def __call__(self, name: str, qtype: str, timeout: float) -> DnsAnswer:
        key = (name.lower().rstrip("."), qtype)
        with self._lock:
            kept = self._cache.get(key)
            if kept is not None and kept[0] > time.monotonic():
                return kept[1]
            pending = self._pending.get(key)
            owner = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not owner:
            if not pending.done.wait(timeout):
                raise spf.TempError(f"DNS timeout for {name} {qtype}")
            if pending.error is not None:
                raise pending.error
            return pending.answer
        try:
            pending.answer, ttl = resolve_once(self._resolver, name, qtype, timeout)
            self._keep(key, pending.answer, ttl)
            return pending.answer
        except Exception as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                del self._pending[key]
            pending.done.set()

    def _keep(self, key: tuple[str, str], answer: DnsAnswer, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._cache[key] = (time.monotonic() + min(ttl, MAX_TTL), answer)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_names:
                self._cache.popitem(last=False)


def resolve_once(resolver: dns.resolver.Resolver, name: str, qtype: str,
                 timeout: float) -> tuple[DnsAnswer, float]:
    """The answer and its TTL; NXDOMAIN and empty answers give [] (RFC 7208 4.6.4 counts
    them as void lookups) kept `NEGATIVE_TTL`, timeouts and server failures raise pyspf's
    TempError (RFC 7208 5: a DNS error makes the result temperror)."""
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException:
        return [], NEGATIVE_TTL        # no such name can exist in DNS
    try:
        answer = resolver.resolve(qname, qtype, search=False,
                                  lifetime=min(timeout, resolver.lifetime))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], NEGATIVE_TTL
    except dns.exception.Timeout as exc:
        raise spf.TempError(f"DNS timeout for {name} {qtype}") from exc
    except dns.exception.DNSException as exc:   # SERVFAIL, REFUSED, malformed reply
        raise spf.TempError(f"DNS error for {name} {qtype}: {_why(exc)}") from exc
    ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
    return [((name, qtype), _value(rdata, qtype)) for rdata in answer], ttl


def _why(exc: dns.exception.DNSException) -> str:
    """What the servers said (e.g. "SERVFAIL"), or the exception's name."""
    errors = exc.kwargs.get("errors") if isinstance(exc, dns.resolver.NoNameservers) else None
    if errors:
        return "; ".join(str(error[3]) for error in errors)
    return type(exc).__name__


def _value(rdata: Any, qtype: str) -> Any:
    """One record's data in the form pyspf expects (see `DnsAnswer`)."""
    if qtype in ("A", "AAAA"):
        return rdata.address
    if qtype == "MX":     # a null MX's "." (RFC 7505) is no host: "" is skipped unqueried
        exchange = rdata.exchange
        return (rdata.preference,
                "" if exchange == dns.name.root else exchange.to_text(omit_final_dot=True))
    if qtype == "PTR":
        return rdata.target.to_text(omit_final_dot=True)
    if qtype in ("TXT", "SPF"):
        return tuple(rdata.strings)
    raise spf.TempError(f"unexpected DNS type {qtype}")


# pyspf looks its DNS function up as the module global `spf.DNSLookup` on every query. We
# replace it once with a dispatcher that calls the lookup the current thread installed, so
# checkers with different resolvers can run side by side.
_current = threading.local()
_install_lock = threading.Lock()


def _dispatch(name: str, qtype: str, strict: object = True, timeout: float = 20.0) -> DnsAnswer:
    lookup: Lookup | None = getattr(_current, "lookup", None)
    if lookup is None:
        raise spf.TempError("no DNS lookup installed for this SPF evaluation")
    answer = lookup(name, qtype, float(timeout))
    if qtype in ("TXT", "SPF"):
        # A TXT record with no strings is illegal (RFC 1035 3.3.14) but a hostile server can
        # send one; pyspf crashes on an answer made only of such records. Read it as "".
        return [(key, value or (b"",)) for key, value in answer]
    return answer


def _install_dispatcher() -> None:
    with _install_lock:
        if spf.DNSLookup is not _dispatch:
            spf.DNSLookup = _dispatch


# -- evaluation -----------------------------------------------------------------------------

class _Query(spf.query):  # type: ignore[misc]  # pyspf's class is untyped
    """pyspf's query with RFC 7208 5.5's DNS-error rules for `ptr` (and the `%{p}` macro,
    7.3, which uses the same validated names): pyspf lets those errors end the evaluation
    as temperror."""

    def validated_ptrs(self) -> list[str]:
        try:
            names: list[str] = self.dns_ptr(self.i)
        except spf.TempError:
            return []            # 5.5: "If a DNS error occurs while doing the PTR RR lookup,
                                 # then this mechanism fails to match."
        # 4.6.4: at most 10 names are validated, the rest ignored.
        return [name for name in names[:spf.MAX_PTR] if self._validates(name)]

    def _validates(self, name: str) -> bool:
        try:
            return bool(self.cidrmatch(self.dns_a(name, self.A), self.cidrmax))
        except spf.TempError:
            return False         # 5.5: "... that domain name is skipped and the search
                                 # continues."


def evaluate(client_ip: str, helo: str, mail_from: str, lookup: Lookup,
             time_limit: float = DEFAULT_TIME_LIMIT, receiver: str = "unknown") -> SpfOutcome:
    """RFC 7208 check_host() for MAIL FROM, or for HELO when `mail_from` is "" (2.4).

    Blocking (DNS through `lookup`); never raises: every failure is a result.

    Args:
        client_ip: the SMTP client's address (IPv4-mapped IPv6 counts as IPv4).
        helo: the HELO/EHLO name.
        mail_from: the envelope sender; "" for the null reverse-path.
        lookup: answers pyspf's DNS questions.
        time_limit: seconds all lookups together may take (then temperror, RFC 7208 4.6.4).
        receiver: our host name, for the `%{r}` macro in explanations.
    """
    scope = "mailfrom" if mail_from else "helo"
    identity = mail_from or helo
    domain = mail_from.rpartition("@")[2] if mail_from else helo
    address = _client_address(client_ip)
    if address is None:
        return SpfOutcome("none", domain, scope, "no client IP address", identity)
    _install_dispatcher()
    _current.lookup = lookup
    try:
        query = _Query(i=str(address), s=mail_from, h=helo, receiver=receiver,
                          strict=True, querytime=time_limit)
        result, _code, explanation = query.check()
    except Exception as exc:   # pyspf bug or a case it does not handle: unknown = temporary
        result, explanation = "temperror", f"internal error: {type(exc).__name__}: {exc}"
    finally:
        _current.lookup = None
    result = _LEGACY.get(result, result)
    if result not in RESULTS:
        explanation = f"unexpected pyspf result {result!r}: {explanation}"
        result = "temperror"
    return SpfOutcome(result, domain, scope, clean_explanation(str(explanation)), identity)


def _client_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address as check_host() takes it: an IPv4-mapped IPv6 address is an
    IPv4 client seen through a dual-stack socket (RFC 4291 2.5.5.2), so it is evaluated as
    IPv4 (ip4 mechanisms, A lookups); an IPv6 zone index is dropped."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return ipaddress.IPv6Address(address.packed)      # without "%zone"
    return address


class SpfChecker:
    """SPF for the MX: DNS through `resolver_spec` (`outbound.resolver` syntax, "" = the
    system resolver), each lookup limited to `timeout` seconds, the whole evaluation to
    `time_limit` seconds."""

    def __init__(self, resolver_spec: str, timeout: float, *,
                 time_limit: float = DEFAULT_TIME_LIMIT, receiver: str = "unknown") -> None:
        self.timeout = timeout
        self.time_limit = time_limit
        self.receiver = receiver
        self._lookup = SharedLookup(make_sync_resolver(resolver_spec, timeout))
        self._pool = concurrent.futures.ThreadPoolExecutor(MAX_PARALLEL, "spf")

    @classmethod
    def from_settings(cls, settings: Settings) -> SpfChecker:
        """The checker the settings describe (`outbound.resolver`, `checks.*`)."""
        return cls(settings.get_str("outbound.resolver"),
                   float(settings.get_int("checks.dns_timeout")),
                   time_limit=float(settings.get_int("checks.spf_time_limit")),
                   receiver=settings.get_str("server.hostname"))

    async def check(self, client_ip: str, helo: str, mail_from: str) -> SpfOutcome:
        """The SPF outcome for a message from `client_ip` that said `helo` and `mail_from`
        ("" for the null sender). Never raises; a stuck evaluation is a temperror."""
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, evaluate, client_ip, helo, mail_from,
                                   self._lookup, self.time_limit, self.receiver)
        try:
            # pyspf enforces time_limit itself; this is the backstop for a lookup overrun.
            return await asyncio.wait_for(job, self.time_limit + self.timeout + 1.0)
        except TimeoutError:
            scope, domain = ("mailfrom", mail_from.rpartition("@")[2]) if mail_from \
                else ("helo", helo)
            log.event("spf.time_limit", domain=domain, seconds=self.time_limit)
            return SpfOutcome("temperror", domain, scope, "SPF evaluation took too long",
                              mail_from or helo)

    def close(self) -> None:
        """Stop the worker threads (running evaluations finish first)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
