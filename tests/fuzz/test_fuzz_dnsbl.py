"""Fuzz the DNSBL parsers: URL extraction from any message bytes never raises, stays within
its bounds and returns only valid registered domains (and finds a link it was given); zone
lists parse or raise ValueError only; query names and answers never raise."""

from __future__ import annotations

import re

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from appliance.checks.dnsbl_urls import registered_domain, url_domains
from appliance.checks.dnsbl_zones import is_listing, parse_zones, reversed_address

DOMAIN = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z0-9_-]{1,63}")
PARTS = st.sampled_from([
    b"http://", b"https://", b"www.", b"ftp://", b"user@", b"example", b".", b"co.uk", b"/",
    b":80", b"\r\n", b"=\r\n", b" ", b"<a href=\"", b"\">", b"\xc3\xbc", b"\xff", b"[::1]",
    b"192.0.2.1", b"--b\r\n", b"Content-Type: text/html\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"charset=bogus", b"xn--", b"-", b"a"])
MESSAGES = st.lists(PARTS, max_size=60).map(b"".join) | st.binary(max_size=600)
# The first URL parses the public suffix list (a few hundred ms): no per-example deadline.
NO_DEADLINE = settings(deadline=None)
LABELS = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@NO_DEADLINE
@given(MESSAGES, st.integers(1, 12), st.integers(1, 2000))
@example(b"Content-Type: text/plain; charset=nope\r\n\r\nhttp://a.example/", 3, 100)
@example(b"Content-Transfer-Encoding: base64\r\n\r\n!!!!", 3, 100)
@example(b"http://" + b"a." * 200 + b"example", 3, 1000)
def test_any_message_gives_bounded_valid_domains(raw: bytes, max_domains: int,
                                                 max_bytes: int) -> None:
    domains = url_domains(raw, max_domains, max_bytes)
    assert len(domains) <= max_domains
    assert len(set(domains)) == len(domains)
    for domain in domains:
        assert DOMAIN.fullmatch(domain), domain
        assert len(domain) <= 253


@NO_DEADLINE
@given(st.lists(LABELS, min_size=1, max_size=3), st.sampled_from(["example", "co.uk", "com"]),
       st.binary(max_size=200), st.binary(max_size=200))
def test_a_link_in_plain_text_is_found(labels: list[str], suffix: str, before: bytes,
                                       after: bytes) -> None:
    before = before.replace(b"http", b"").replace(b"www", b"")
    host = ".".join([*labels, suffix])
    body = before + b" https://" + host.encode() + b"/path " + after
    raw = b"Content-Type: text/plain; charset=latin-1\r\n\r\n" + body
    expected = registered_domain(host)
    assume(expected is not None)             # "eu.com" is itself a public suffix
    assert expected in url_domains(raw, 100, 10_000)
    assert expected.endswith(suffix)


@given(st.text(max_size=120))
@example("zen.spamhaus.org:6, list.dnswl.org:-5")
@example("a.test:nan")
@example("a.test:inf")
def test_zone_lists_parse_or_raise_value_error(text: str) -> None:
    try:
        zones = parse_zones(text, frozenset({"a.test"}))
    except ValueError:
        return
    for zone in zones:
        assert -100 <= zone.points <= 100
        assert zone.points != 0
        assert not (zone.reject and zone.points < 0)


@given(st.text(max_size=60) | st.ip_addresses().map(str))
def test_query_names_and_answers_never_raise(text: str) -> None:
    name = reversed_address(text)
    assert name is None or re.fullmatch(r"[0-9a-f.]+", name)
    assert isinstance(is_listing(text), bool)
