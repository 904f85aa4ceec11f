"""The outbound DNS cache: TTLs honoured, negative answers kept only briefly."""

from __future__ import annotations

import time

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pytest

from appliance.outbound.dnscache import MAX_NEGATIVE_TTL, make_dns_cache

NAME = dns.name.from_text("mx.example.test.")


def answer(ttl: int) -> dns.resolver.Answer:
    response = dns.message.from_text(
        f"id 1\nopcode QUERY\nrcode NOERROR\nflags QR\n;QUESTION\n{NAME} IN A\n"
        f";ANSWER\n{NAME} {ttl} IN A 192.0.2.1\n")
    assert isinstance(response, dns.message.QueryMessage)
    return dns.resolver.Answer(NAME, dns.rdatatype.A, dns.rdataclass.IN, response)


def nxdomain(soa_ttl: int) -> dns.resolver.Answer:
    response = dns.message.from_text(
        f"id 1\nopcode QUERY\nrcode NXDOMAIN\nflags QR\n;QUESTION\n{NAME} IN A\n"
        f";AUTHORITY\nexample.test. {soa_ttl} IN SOA ns. host. 1 7200 900 1209600 "
        f"{soa_ttl}\n")
    assert isinstance(response, dns.message.QueryMessage)
    return dns.resolver.Answer(NAME, dns.rdatatype.ANY, dns.rdataclass.IN, response)


def test_an_answer_is_kept_for_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    cache = make_dns_cache()
    key = (NAME, dns.rdatatype.A, dns.rdataclass.IN)
    cache.put(key, answer(60))
    now[0] += 59
    assert cache.get(key) is not None
    now[0] += 2
    assert cache.get(key) is None


def test_a_negative_answer_is_kept_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    cache = make_dns_cache()
    key = (NAME, dns.rdatatype.ANY, dns.rdataclass.IN)
    cache.put(key, nxdomain(86400))
    now[0] += MAX_NEGATIVE_TTL - 1
    assert cache.get(key) is not None
    now[0] += 2
    assert cache.get(key) is None


def test_the_cache_is_bounded() -> None:
    cache = make_dns_cache(max_entries=2)
    for index in range(3):
        cache.put((dns.name.from_text(f"h{index}.test."), dns.rdatatype.A,
                   dns.rdataclass.IN), answer(60))
    assert len(cache.data) == 2
