"""DNSBL/DNSWL: zone lists, query names, listing answers, URL domains (pure), and the check
against a real Knot serving a test blocklist, allow list and URI blocklist (RFC 5782)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dns.asyncresolver
import pytest

from appliance.checks.context import MessageContext
from appliance.checks.dnsbl import DnsblCheck, DnsblConfig
from appliance.checks.dnsbl_lookup import DnsblResolver
from appliance.checks.dnsbl_urls import registered_domain, url_domains
from appliance.checks.dnsbl_zones import (
    Zone,
    is_listing,
    parse_zone_names,
    parse_zones,
    reversed_address,
)
from appliance.checks.result import Verdict
from appliance.outbound.mx import make_resolver
from appliance.settings import SettingsError, load_settings
from appliance.smtp import replies
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(60)

V6_CLIENT = "2001:db8::17"
V6_NIBBLES = "7.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"

# -- zone lists ------------------------------------------------------------------------------


def test_zone_list_parses_points_and_reject_marks() -> None:
    zones = parse_zones("zen.spamhaus.org:6, list.dnswl.org:-5,bl.example.test",
                        frozenset({"zen.spamhaus.org", "list.dnswl.org"}))
    assert zones == (Zone("zen.spamhaus.org", 6.0, True), Zone("list.dnswl.org", -5.0, False),
                     Zone("bl.example.test", 1.0, False))
    assert zones[1].allows
    assert not zones[0].allows
    assert parse_zones("") == ()
    assert parse_zones(" Zen.Spamhaus.Org. :2.5") == (Zone("zen.spamhaus.org", 2.5),)


@pytest.mark.parametrize("text", ["nodot", "zen.spamhaus.org:abc", "a.test:0", "a.test:101",
                                  "a.test:1, a.test:2", "bad..test", "-x.test", "a b.test",
                                  ",".join(f"z{i}.test" for i in range(17))])
def test_malformed_zone_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_zones(text)


def test_zone_settings_are_validated_by_the_schema() -> None:
    with pytest.raises(SettingsError, match=r"dnsbl\.ip_zones"):
        load_settings(None, {"MAILSTEAD_DNSBL__IP_ZONES": "zen:x"})
    with pytest.raises(SettingsError, match=r"client_limits\.exempt_networks"):
        load_settings(None, {"MAILSTEAD_CLIENT_LIMITS__EXEMPT_NETWORKS": "10.0.0.0/33"})
    assert parse_zone_names("a.test, B.test.") == {"a.test", "b.test"}


def test_query_names_reverse_octets_and_nibbles() -> None:
    assert reversed_address("192.0.2.99") == "99.2.0.192"
    assert reversed_address("127.0.0.1") == "1.0.0.127"
    assert reversed_address("::ffff:192.0.2.1") == "1.2.0.192"     # IPv4-mapped
    assert reversed_address(V6_CLIENT) == V6_NIBBLES                 # RFC 5782 2.4
    assert reversed_address("[::1]") == "1" + ".0" * 31
    assert reversed_address("not an address") is None


@pytest.mark.parametrize(("answer", "listed"), [
    ("127.0.0.2", True), ("127.0.0.10", True), ("127.0.1.2", True), ("127.0.10.3", True),
    ("127.0.0.1", False),            # RFC 5782 5; SURBL's "access blocked"
    ("127.255.255.254", False),      # Spamhaus: public resolver
    ("127.255.255.252", False),      # Spamhaus: typo in the query
    ("127.0.1.255", False),          # DBL: IP queried as a domain
    ("127.0.0.255", False),          # DNSWL: over the limit
    ("192.0.2.1", False),            # a wildcard or hijacked zone
    ("::1", False), ("", False)])
def test_which_answers_are_listings(answer: str, listed: bool) -> None:
    assert is_listing(answer) is listed


# -- URL domains ---------------------------------------------------------------------------


def message(body: bytes, headers: bytes = b"Content-Type: text/plain\r\n") -> bytes:
    return b"From: a@example.org\r\nSubject: x\r\n" + headers + b"\r\n" + body


def test_url_domains_are_registered_domains_in_order() -> None:
    body = (b"see https://www.Shop.example.co.uk/x?y and http://user@mail.bad.example:8080/\r\n"
            b"or www.third.example.com, again https://bad.example/z, ftp://files.example.net\r\n"
            b"not: http://192.0.2.1/ http://[2001:db8::1]/ mailto:x@nolink.example\r\n")
    assert url_domains(message(body), 10, 65536) == (
        "example.co.uk", "bad.example", "example.com", "example.net")


def test_url_domains_in_encoded_and_html_parts() -> None:
    html = base64.encodebytes(b'<a href="https://www.b64.example/p">x</a>')
    mime = (b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
            b"\r\n\r\nhttps://qp-split.exa=\r\nmple/a\r\n"
            b"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + html + b"--b\r\nContent-Type: image/png\r\n\r\nhttps://image.example.org\r\n"
            b"--b--\r\n")
    found = url_domains(message(mime, b'Content-Type: multipart/mixed; boundary="b"\r\n'),
                        10, 65536)
    assert found == ("qp-split.example", "b64.example")


def test_url_domains_are_bounded() -> None:
    many = b" ".join(b"http://d%d.example/" % i for i in range(50))
    assert len(url_domains(message(many), 7, 65536)) == 7
    late = message(b"x" * 5000 + b" http://late.example/")
    assert url_domains(late, 10, 4096) == ()
    assert url_domains(late, 10, 65536) == ("late.example",)


def test_registered_domain_handles_idn_and_junk() -> None:
    assert registered_domain("www.bücher.example") == "xn--bcher-kva.example"
    assert registered_domain("co.uk") is None            # a public suffix alone
    assert registered_domain("localhost") is None
    assert registered_domain("a..example") is None
    assert registered_domain("x" * 64 + ".example") is None


# -- the check against a real Knot ---------------------------------------------------------

IP_ZONE = "bl.dnsbl.test"
ALLOW_ZONE = "wl.dnsbl.test"
URI_ZONE = "uri.dnsbl.test"


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    records = [
        "1.0.0.127.bl A 127.0.0.2",                # 127.0.0.1 is listed
        "2.0.0.127.bl A 127.255.255.254",          # 127.0.0.2: the "public resolver" error
        f"{V6_NIBBLES}.bl A 127.0.0.4",            # an IPv6 client
        "3.0.0.127.bl A 127.0.0.2",                # 127.0.0.3: listed, and allowed
        "3.0.0.127.wl A 127.0.10.2",
        "bad.example.uri A 127.0.1.2",
        "ip.example.uri A 127.0.1.255",            # DBL's error answer
    ]
    server = KnotDns(tmp_path_factory.mktemp("dnsbl-knot"),
                     {"dnsbl.test": zone_text("dnsbl.test", records, ttl=30)})
    with server:
        yield server


def make_check(knot: KnotDns, reject: frozenset[str] = frozenset(), timeout: float = 2.0,
               resolver: dns.asyncresolver.Resolver | None = None) -> DnsblCheck:
    config = DnsblConfig(parse_zones(f"{IP_ZONE}:4, {ALLOW_ZONE}:-3", reject),
                         parse_zones(f"{URI_ZONE}:5", reject))
    resolver = resolver or make_resolver(knot.resolver_spec, timeout)
    return DnsblCheck(config, DnsblResolver(resolver, timeout))


def run(check: DnsblCheck, client: str, body: bytes = b"hello\r\n"
        ) -> tuple[Verdict, str, list[tuple[str, float]]]:
    context = MessageContext(queue_id="Q1", client_ip=client)
    result = asyncio.run(check.check(message(body), context))
    return result.verdict, result.reply, context.score_parts


def test_listed_ipv4_client_adds_points(knot: KnotDns) -> None:
    assert run(make_check(knot), "127.0.0.1") == (Verdict.ACCEPT, "", [(f"DNSBL_{IP_ZONE}", 4)])


def test_listed_ipv6_client_adds_points(knot: KnotDns) -> None:
    assert run(make_check(knot), V6_CLIENT)[2] == [(f"DNSBL_{IP_ZONE}", 4)]


def test_unlisted_client_and_error_answers_add_nothing(knot: KnotDns) -> None:
    assert run(make_check(knot), "127.0.0.9") == (Verdict.ACCEPT, "", [])
    assert run(make_check(knot), "127.0.0.2") == (Verdict.ACCEPT, "", [])   # 127.255.255.254


def test_allow_list_adds_negative_points_and_vetoes_a_reject(knot: KnotDns) -> None:
    check = make_check(knot, reject=frozenset({IP_ZONE}))
    verdict, _, parts = run(check, "127.0.0.3")
    assert verdict == Verdict.ACCEPT
    assert sorted(parts) == [(f"DNSBL_{IP_ZONE}", 4), (f"DNSWL_{ALLOW_ZONE}", -3)]


def test_reject_worthy_zone_rejects_with_the_generic_reply(knot: KnotDns) -> None:
    verdict, reply, parts = run(make_check(knot, reject=frozenset({IP_ZONE})), "127.0.0.1")
    assert (verdict, reply) == (Verdict.REJECT, replies.POLICY_BLOCKED)
    assert IP_ZONE not in reply
    assert parts == [(f"DNSBL_{IP_ZONE}", 4)]


def test_uri_blocklist_hits_the_registered_domain(knot: KnotDns) -> None:
    body = b"cheap https://www.shop.bad.example/buy and https://ip.example/ and x.example\r\n"
    assert run(make_check(knot), "127.0.0.9", body)[2] == [(f"URIBL_{URI_ZONE}", 5)]
    verdict, reply, _ = run(make_check(knot, reject=frozenset({URI_ZONE})), "127.0.0.9", body)
    assert (verdict, reply) == (Verdict.REJECT, replies.POLICY_BLOCKED)


def test_answers_are_cached_for_their_ttl(knot: KnotDns, tmp_path: Path) -> None:
    now = [1000.0]
    with KnotDns(tmp_path, {"dnsbl.test": zone_text("dnsbl.test", [
            "1.0.0.127.bl A 127.0.0.2"], ttl=30)}) as short_lived:
        cache = DnsblResolver(make_resolver(short_lived.resolver_spec, 0.5), 0.5,
                              clock=lambda: now[0])
        first = asyncio.run(cache.lookup(f"1.0.0.127.{IP_ZONE}"))
        missing = asyncio.run(cache.lookup(f"9.0.0.127.{IP_ZONE}"))      # NXDOMAIN
    # knotd is gone: answers now come from the cache, until their TTL (30 s) passes
    again = asyncio.run(cache.lookup(f"1.0.0.127.{IP_ZONE}"))
    assert (first.answers, first.cached) == (("127.0.0.2",), False)
    assert (again.answers, again.cached) == (("127.0.0.2",), True)
    assert asyncio.run(cache.lookup(f"9.0.0.127.{IP_ZONE}")).cached
    assert missing.answers == ()
    assert len(cache) == 2
    now[0] += 31
    expired = asyncio.run(cache.lookup(f"1.0.0.127.{IP_ZONE}"))
    assert expired.error
    assert not expired.cached
    # NXDOMAIN is kept for the SOA's TTL and MINIMUM (30 s, RFC 2308 5), not NEGATIVE_TTL
    gone = asyncio.run(cache.lookup(f"9.0.0.127.{IP_ZONE}"))
    assert gone.error
    assert not gone.cached


def test_cache_is_bounded(knot: KnotDns) -> None:
    cache = DnsblResolver(make_resolver(knot.resolver_spec, 2.0), 2.0, max_entries=3)

    async def many() -> None:
        for i in range(10, 20):
            await cache.lookup(f"{i}.0.0.127.{IP_ZONE}")

    asyncio.run(many())
    assert len(cache) == 3


@contextlib.contextmanager
def silent_dns() -> Iterator[str]:
    """A UDP and TCP port on loopback that take queries and never answer."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", port))
    tcp.listen(8)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        udp.close()
        tcp.close()


def test_lookups_time_out_fast_and_fail_open(knot: KnotDns) -> None:
    with silent_dns() as spec:
        check = make_check(knot, reject=frozenset({IP_ZONE}), timeout=0.3,
                           resolver=make_resolver(spec, 0.3))
        started = time.monotonic()
        context = MessageContext(queue_id="Q1", client_ip="127.0.0.1")
        result = asyncio.run(check.check(message(b"https://bad.example/\r\n"), context))
        elapsed = time.monotonic() - started
    assert result.verdict == Verdict.ACCEPT
    assert context.score_parts == []
    assert "3 lookups, 3 failed" in result.reason
    assert elapsed < 1.5         # concurrent: one timeout, not three


def test_no_system_resolver_fails_open() -> None:
    check = DnsblCheck(DnsblConfig(parse_zones(IP_ZONE), ()), DnsblResolver(None, 1.0))
    assert run(check, "127.0.0.1") == (Verdict.ACCEPT, "", [])
