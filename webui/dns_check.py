"""Live checks of the DNS page: each record of `dns_records` looked up through dnspython and
compared by meaning, plus this server's reverse DNS, outbound port 25 and blocklist listings.

Every check gives one `Result` with a state: `ok`, `missing` (no such record), `wrong` (a
record that does not say what it should) or `error` (no answer: timeout, SERVFAIL). Lookups
run at once (asyncio) against `outbound.resolver`, each bounded by `dns.check_timeout`.
`dns_store.py` keeps the results and the alerts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

from appliance.checks.dnsbl_zones import is_listing, parse_zone_names, reversed_address
from appliance.dkim import keys
from appliance.outbound.mx import make_resolver
from appliance.settings import Settings
from webui.dns_records import Record, ServerFacts, parse_target, records_for

STATES = ("ok", "missing", "wrong", "error")
SERVER = ""                      # the `domain` of the server's own checks
MAX_FOUND = 2000                 # characters of found RDATA kept per result


@dataclass(frozen=True)
class Result:
    """One check: what was expected at `name`, what DNS (or the network) gave, the state."""

    domain: str
    key: str
    purpose: str
    name: str
    rtype: str
    expected: str
    found: str
    state: str
    note: str = ""


@dataclass(frozen=True)
class CheckConfig:
    """How to check: the resolver (`outbound.resolver` syntax), limits and targets."""

    resolver: str = ""
    timeout: float = 5.0
    blocklists: tuple[str, ...] = ()
    port25_target: tuple[str, int] | None = None


class NoRecordError(Exception):
    """The name or the record type does not exist (NXDOMAIN, NODATA)."""


class LookupFailedError(Exception):
    """No usable answer: timeout, SERVFAIL, REFUSED, no resolver."""


Resolve = Callable[[str, str], Awaitable[list[str]]]


def make_lookup(resolver: dns.asyncresolver.Resolver) -> Resolve:
    """`resolve(name, rtype)`: the RDATA texts (TXT joined and unquoted, names lower case
    without the root dot); raises NoRecordError or LookupFailedError."""

    async def resolve(name: str, rtype: str) -> list[str]:
        try:
            answer = await resolver.resolve(name + ".", rtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
            raise NoRecordError(type(exc).__name__) from None
        except dns.exception.Timeout:
            raise LookupFailedError("timeout") from None
        except dns.resolver.NoNameservers:
            raise LookupFailedError("server failure (SERVFAIL or refused)") from None
        except (dns.exception.DNSException, ValueError) as exc:
            raise LookupFailedError(type(exc).__name__) from None
        if rtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return [r.to_text().lower().rstrip(".") for r in answer]

    return resolve


# -- comparing one record ------------------------------------------------------------------


async def check_record(domain: str, record: Record, facts: ServerFacts,
                       resolve: Resolve) -> Result:
    """Look `record` up and compare what DNS gives with what we publish."""
    try:
        found = await resolve(record.name, _query_type(record))
    except NoRecordError:
        return _result(domain, record, "", "missing", "no such record")
    except LookupFailedError as exc:
        return _result(domain, record, "", "error", f"lookup failed: {exc}")
    state, note = await _compare(record, found, facts, resolve)
    if record.rtype == "CNAME":
        return _result(domain, record, await _alias_chain(record.name, found, resolve),
                       state, note)
    return _result(domain, record, "\n".join(found), state, note)


async def _alias_chain(name: str, addresses: list[str], resolve: Resolve) -> str:
    """What a name that should be a CNAME leads to, for the page: `target → address`, or
    the addresses alone when the name holds A records itself (RFC 1034 3.6.2)."""
    try:
        targets = await resolve(name, "CNAME")
    except (NoRecordError, LookupFailedError):
        return ", ".join(addresses)
    return f"{', '.join(targets)} → {', '.join(addresses)}"


def _query_type(record: Record) -> str:
    # A CNAME we ask for is checked through the A lookup (which follows it): an A record
    # with our address is as good as the CNAME.
    return "A" if record.rtype == "CNAME" else record.rtype


def _result(domain: str, record: Record, found: str, state: str, note: str) -> Result:
    expected = record.value or "(this server's public address)"
    return Result(domain, record.key, record.purpose, record.name, record.rtype, expected,
                  found[:MAX_FOUND], state, note or record.note)


async def _compare(record: Record, found: list[str], facts: ServerFacts,
                   resolve: Resolve) -> tuple[str, str]:
    if record.rtype == "MX":
        hosts = {line.split()[-1] for line in found if line.split()}
        return _verdict(facts.host in hosts, f"{facts.host} is not among the MX hosts")
    if record.rtype in ("A", "AAAA"):
        if not record.value:
            return "ok", "address not compared: set dns.public_ipv4"
        return _verdict(_same_address(record.value, found), "another address")
    if record.rtype == "CNAME":
        return await _compare_alias(found, facts, resolve)
    if record.rtype == "SRV":
        return _compare_srv(record, found)
    return compare_txt(record, found, facts)


def _verdict(good: bool, problem: str) -> tuple[str, str]:
    return ("ok", "") if good else ("wrong", problem)


def _same_address(expected: str, found: Sequence[str]) -> bool:
    try:
        want = ipaddress.ip_address(expected)
        return any(ipaddress.ip_address(text) == want for text in found)
    except ValueError:
        return False


async def _compare_alias(found: list[str], facts: ServerFacts,
                         resolve: Resolve) -> tuple[str, str]:
    """A name that should lead to this server: its addresses must be the host's."""
    if facts.ipv4:
        return _verdict(_same_address(facts.ipv4, found), "does not lead to this server")
    try:
        host = await resolve(facts.host, "A")
    except (NoRecordError, LookupFailedError) as exc:
        return "error", f"cannot compare: {facts.host} has no address ({exc})"
    return _verdict(set(found) == set(host), f"addresses differ from {facts.host}'s")


def _compare_srv(record: Record, found: list[str]) -> tuple[str, str]:
    # RFC 2782: priority weight port target; priority and weight are shown, not compared.
    want = record.value.split()
    for line in found:
        parts = line.split()
        if len(parts) == 4 and parts[2:] == [want[2], want[3].rstrip(".")]:
            return "ok", ""
    return "wrong", f"expected port {want[2]} on {want[3].rstrip('.')}"


def compare_txt(record: Record, found: Sequence[str], facts: ServerFacts
                ) -> tuple[str, str]:
    """Compare TXT records by meaning (pure): the record of the right kind, one of it, with
    the tags that matter equal."""
    kind = record.key.split(":", 1)[0]
    version = {"spf": "v=spf1", "dmarc": "v=DMARC1", "mta-sts": "v=STSv1",
               "tls-rpt": "v=TLSRPTv1", "dkim": ""}[kind]
    mine = [t for t in found if _starts(t, version)] if version else list(found)
    if not mine:
        return "wrong", f"no {version or 'DKIM'} record among the TXT records"
    if kind == "dkim":
        return _verdict(any(tag(t, "p") == tag(record.value, "p") for t in mine),
                        "another public key (p=)")
    # RFC 7208 4.5, RFC 7489 6.6.3, RFC 8461 3.1, RFC 8460 3: several records count as none.
    if len(mine) > 1:
        return "wrong", f"{len(mine)} {version} records: receivers ignore them all"
    return _compare_policy(kind, mine[0], record, facts)


def _compare_policy(kind: str, text: str, record: Record, facts: ServerFacts
                    ) -> tuple[str, str]:
    if kind == "spf":
        return spf_verdict(text, facts)
    if kind == "dmarc":
        policy = (tag(text, "p") or "").lower()
        if policy in ("quarantine", "reject"):
            return "ok", ""
        return "wrong", f"p={policy or '(missing)'}: receivers do not act on failures"
    if kind == "mta-sts":
        return _verdict(tag(text, "id") == tag(record.value, "id"),
                        "another id: senders keep an old policy")
    return _verdict(bool(tag(text, "rua")), "no rua= address for reports")


def _starts(text: str, version: str) -> bool:
    head = text.strip()[:len(version) + 1].lower()
    return head.rstrip("; ") == version.lower()


def tag(text: str, name: str) -> str | None:
    """The value of tag `name` in a `tag=value; ...` record (DKIM, DMARC, MTA-STS, TLS-RPT
    syntax), whitespace removed."""
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            return "".join(value.split())
    return None


def spf_verdict(text: str, facts: ServerFacts) -> tuple[str, str]:
    """Whether an SPF record lets this server send (RFC 7208 5): `mx`, `a:<host>` or an
    `ip4:`/`ip6:` network holding our address; and does not let everyone (`+all`)."""
    terms = text.lower().split()[1:]
    if any(t in ("all", "+all", "?all") for t in terms):
        return "wrong", "ends in +all or ?all: anyone may send as the domain"
    if any(t in ("mx", "+mx", f"a:{facts.host}", f"+a:{facts.host}") for t in terms):
        return "ok", ""
    if any(_network_holds(t, facts) for t in terms):
        return "ok", ""
    return "wrong", "does not name this server (mx, a:host or ip4:address)"


def _network_holds(term: str, facts: ServerFacts) -> bool:
    mechanism, _, network = term.lstrip("+").partition(":")
    address = {"ip4": facts.ipv4, "ip6": facts.ipv6}.get(mechanism)
    if not address:
        return False
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


# -- this server: reverse DNS, outbound port 25, blocklists ---------------------------------


async def check_reverse(address: str, facts: ServerFacts, resolve: Resolve) -> Result:
    """PTR of `address` must name the host, and the host must resolve back to `address`:
    forward-confirmed reverse DNS (the `iprev` of RFC 8601 3), which many receivers
    require of a sending server."""
    pointer = ipaddress.ip_address(address).reverse_pointer
    base = Result(SERVER, f"ptr:{address}", "Reverse DNS of the public address", pointer,
                  "PTR", facts.host, "", "error")
    try:
        names = await resolve(pointer, "PTR")
    except NoRecordError:
        return _with(base, "", "missing", "no PTR record: ask your access provider for one")
    except LookupFailedError as exc:
        return _with(base, "", "error", f"lookup failed: {exc}")
    found = "\n".join(names)
    if facts.host not in names:
        return _with(base, found, "wrong", f"does not name {facts.host}")
    rtype = "AAAA" if ":" in address else "A"
    try:
        forward = await resolve(facts.host, rtype)
    except (NoRecordError, LookupFailedError) as exc:
        return _with(base, found, "wrong", f"{facts.host} has no {rtype} record ({exc})")
    if not _same_address(address, forward):
        return _with(base, found, "wrong", f"{facts.host} does not resolve to {address}")
    return _with(base, found, "ok", "forward-confirmed")


def _with(base: Result, found: str, state: str, note: str) -> Result:
    return Result(base.domain, base.key, base.purpose, base.name, base.rtype, base.expected,
                  found[:MAX_FOUND], state, note)


async def check_port25(target: tuple[str, int], timeout: float) -> Result:
    """Open (and close at once) a TCP connection to `target`: whether our mail can leave."""
    host, port = target
    base = Result(SERVER, "port25", "Outbound SMTP (port 25)", f"{host}:{port}", "TCP",
                  "connection opens", "", "error")
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return _with(base, "no answer", "wrong",
                     "timed out: outbound port 25 may be blocked by your access provider")
    except socket.gaierror as exc:
        return _with(base, str(exc)[:200], "error", f"cannot resolve {host}")
    except OSError as exc:
        return _with(base, str(exc)[:200], "wrong", "connection failed")
    writer.close()
    await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    return _with(base, "connected", "ok", "")


async def check_blocklist(address: str, zone: str, resolve: Resolve) -> Result:
    """Whether `address` is listed in DNS blocklist `zone` (RFC 5782 2.1)."""
    query = f"{reversed_address(address)}.{zone}"
    base = Result(SERVER, f"dnsbl:{zone}:{address}", "Blocklist", query, "A",
                  "not listed", "", "error")
    try:
        answers = await resolve(query, "A")
    except NoRecordError:
        return _with(base, "not listed", "ok", "")
    except LookupFailedError as exc:
        return _with(base, "", "error", f"lookup failed: {exc}")
    listed = [a for a in answers if is_listing(a)]
    if listed:
        return _with(base, ", ".join(listed), "wrong", f"listed in {zone}: ask for removal")
    return _with(base, ", ".join(answers), "ok",
                 "the answer is not a listing (the list may refuse this resolver)")


async def check_server(facts: ServerFacts, config: CheckConfig, resolve: Resolve
                       ) -> list[Result]:
    """Reverse DNS of each public address, port 25, and the IPv4 address's listings."""
    addresses = [a for a in (facts.ipv4, facts.ipv6) if a]
    jobs: list[Awaitable[Result]] = [check_reverse(a, facts, resolve) for a in addresses]
    if config.port25_target is not None:
        jobs.append(check_port25(config.port25_target, config.timeout))
    if facts.ipv4:
        jobs += [check_blocklist(facts.ipv4, zone, resolve) for zone in config.blocklists]
    results = list(await asyncio.gather(*jobs))
    if not addresses:
        results.insert(0, Result(SERVER, "ptr", "Reverse DNS of the public address", "",
                                 "PTR", facts.host, "", "missing",
                                 "set dns.public_ipv4 to check reverse DNS and blocklists"))
    return results


async def check_domain(domain: str, records: Sequence[Record], facts: ServerFacts,
                       resolve: Resolve) -> list[Result]:
    return list(await asyncio.gather(*(check_record(domain, r, facts, resolve)
                                       for r in records)))


# -- from settings ---------------------------------------------------------------------------


def facts_from_settings(settings: Settings) -> ServerFacts:
    """What the records say, from `server.hostname`, `listen.*_port` and `dns.*`."""
    ports = tuple((name, settings.get_int(f"listen.{name}_port"))
                  for name in ("submissions", "submission", "imaps", "imap", "pop3s", "pop3"))
    locals_ = settings.get_str("reports.addresses").split(",")[0].strip()
    return ServerFacts(
        hostname=settings.get_str("server.hostname"),
        ipv4=settings.get_str("dns.public_ipv4").strip(),
        ipv6=settings.get_str("dns.public_ipv6").strip(),
        ports=ports,
        mta_sts_mode=settings.get_str("dns.mta_sts_mode"),
        mta_sts_max_age=settings.get_int("dns.mta_sts_max_age"),
        report_local=locals_.partition("@")[0] or "postmaster")


def config_from_settings(settings: Settings) -> CheckConfig:
    return CheckConfig(
        resolver=settings.get_str("outbound.resolver"),
        timeout=float(settings.get_int("dns.check_timeout")),
        blocklists=tuple(sorted(parse_zone_names(settings.get_str("dns.blocklists")))),
        port25_target=parse_target(settings.get_str("dns.port25_target")))


def dkim_records(data_dir: Path, domain: str) -> list[tuple[str, str]]:
    """(owner, TXT value) of the domain's active and pending DKIM selectors."""
    state = keys.load_state(data_dir, domain)
    if state is None:
        return []
    found: list[tuple[str, str]] = []
    for pair in (state.active, state.pending):
        if pair is not None:
            found += keys.pair_records(data_dir, domain, pair)
    return found


def domain_records(settings: Settings, domain: str) -> list[Record]:
    return records_for(domain, facts_from_settings(settings),
                       dkim_records(settings.data_dir, domain))


def run_checks(settings: Settings, domains: Sequence[str]) -> list[Result]:
    """Check `domains` and the server (blocking: runs its own event loop).

    Raises:
        ValueError: a malformed `outbound.resolver`.
    """
    facts = facts_from_settings(settings)
    config = config_from_settings(settings)
    records = {d: domain_records(settings, d) for d in domains}
    return asyncio.run(_run(facts, config, records))


async def _run(facts: ServerFacts, config: CheckConfig,
               records: dict[str, list[Record]]) -> list[Result]:
    try:
        resolve = make_lookup(make_resolver(config.resolver, config.timeout))
    except dns.resolver.NoResolverConfiguration:
        resolve = _no_resolver
    parts = await asyncio.gather(check_server(facts, config, resolve),
                                 *(check_domain(d, r, facts, resolve)
                                   for d, r in records.items()))
    return [result for part in parts for result in part]


async def _no_resolver(name: str, rtype: str) -> list[str]:
    raise LookupFailedError("no resolver configured (outbound.resolver, /etc/resolv.conf)")
