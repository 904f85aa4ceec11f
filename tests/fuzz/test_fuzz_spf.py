"""Fuzz the SPF record path: any TXT records, identities and client addresses give one of
RFC 7208's seven results, never an exception and never our "internal error" fallback
(which would mean pyspf raised something it should have turned into a result).

DNS answers here come from the in-memory lookup `evaluate` takes (the same interface the
real resolver adapter fills): thousands of records a second, which a DNS server per example
could not serve. The real DNS path is exercised by tests/integration/test_spf_rfc7208.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.checks.spf import RESULTS, DnsAnswer, evaluate

FAST = settings(max_examples=400, deadline=None)
# Pieces that make the fuzzer reach deep into the grammar (RFC 7208 12, collected ABNF).
TERMS = st.sampled_from([
    "v=spf1", "v=spf1 ", " ", "  ", "all", "-all", "~all", "?all", "+all", "a", "mx", "ptr",
    "a:", "mx:", "a/24", "a//64", "mx/0", "a:h.example.org/33", "ip4:", "ip4:192.0.2.1",
    "ip4:192.0.2.0/24", "ip4:192.0.2.0/33", "ip4:999.1.1.1", "ip6:", "ip6:2001:db8::/32",
    "ip6:2001:db8::/129", "ip6:::ffff:1.2.3.4", "include:", "include:inc.example.org",
    "include:%{d}", "exists:%{i}.%{l}.x.example.org", "exists:", "redirect=", "exp=",
    "redirect=r.example.org", "exp=e.example.org", "ptr:example.org", "%{", "%{ir}",
    "%{l1r-}", "%{d4}", "%{h}", "%{p}", "%{v}", "%{c}", "%{r}", "%{t}", "%{s}", "%{o}",
    "%%", "%_", "%-", "%{z}", "%{d0}", "%{d999999999999}", "=", "foo=bar", "1up=x", ":",
    "\x00", "\r\n", "\x96", "é", "\ufeff", "a:" + "x" * 70 + ".example.org",
    "exists:" + "%{l}" * 40, "include:" + "a." * 130 + "org",
])
RECORD = st.lists(TERMS | st.text(max_size=20), max_size=25).map("".join)
STRINGS = st.lists(RECORD.map(lambda r: r.encode("utf-8", "surrogatepass")) |
                   st.binary(max_size=300), min_size=0, max_size=3)
ZONE = st.lists(STRINGS, min_size=0, max_size=3)
IPS = st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "0.0.0.0", "::",
                       "255.255.255.255", "not an ip", "", "[192.0.2.1]", "fe80::1%eth0",
                       "::ffff:0.0.0.0", "2001:db8::1%%"])
IDENTITY = st.sampled_from(["a@example.org", "", "@example.org", "a@", "a@[192.0.2.1]",
                            '"q;x"@example.org', "a@ex ample.org", "a@" + "b" * 300,
                            "a@-.org", "ü@exämple.org", "a@example.org."]) | st.text(max_size=40)


def lookup_for(zone: list[list[bytes]]) -> Any:
    """A lookup that answers every TXT question with `zone`'s records, and gives a few
    addresses, MX hosts and PTR names for everything else."""

    def lookup(name: str, qtype: str, timeout: float) -> DnsAnswer:
        key = (name, qtype)
        if qtype in ("TXT", "SPF"):
            return [(key, tuple(strings)) for strings in zone]
        if qtype == "A":
            return [(key, "192.0.2.1"), (key, "198.51.100.7")]
        if qtype == "AAAA":
            return [(key, "2001:db8::1")]
        if qtype == "MX":
            return [(key, (10, "mx.example.org")), (key, (0, ""))]
        if qtype == "PTR":
            return [(key, "h.example.org"), (key, "..")]
        return []

    return lookup


def assert_defined(outcome: Any) -> None:
    assert outcome.result in RESULTS
    assert not outcome.explanation.startswith("internal error"), outcome.explanation
    assert outcome.explanation.isascii()
    assert outcome.explanation.isprintable()
    resinfo = outcome.resinfo
    assert not set(resinfo) & {";", "\r", "\n"}
    assert resinfo.startswith(f"spf={outcome.result} smtp.{outcome.scope}=")


@FAST
@given(ZONE)
@example([[b"v=spf1 ip4:192.0.2.1 -all"]])
@example([[b"v=spf1 ", b"include:x.example.org"]])          # an include loop onto itself
@example([[b"v=spf1 redirect=%{d}"]])
@example([[b"v=spf1 ", b"\xff\xfe -all"]])
@example([[]])
def test_any_records_give_a_result(zone: list[list[bytes]]) -> None:
    assert_defined(evaluate("192.0.2.9", "mail.example.org", "a@example.org", lookup_for(zone)))


@FAST
@given(ZONE, IPS, IDENTITY, IDENTITY)
def test_any_identities_give_a_result(zone: list[list[bytes]], ip: str, mail_from: str,
                                      helo: str) -> None:
    outcome = evaluate(ip, helo, mail_from, lookup_for(zone))
    assert_defined(outcome)
    assert outcome.scope == ("mailfrom" if mail_from else "helo")
