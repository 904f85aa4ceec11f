"""Fuzz DMARC's parsers (appliance/checks/dmarc.py): any TXT text gives a record within the
RFC's value ranges or one of the two documented errors; any header block gives author
domains (ASCII, lower-case) and a problem text, never an exception; every resinfo fits in
an Authentication-Results field."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.checks.dmarc import (
    POLICIES,
    Discovery,
    DmarcRecordError,
    Identifiers,
    NotDmarcRecordError,
    author_domains,
    evaluate,
    organizational_domain,
    parse_record,
)
from appliance.checks.result import CheckResult, Verdict

TAGS = st.sampled_from(["v=DMARC1", "p=reject", "p=none", "p=quarantine", "p=", "sp=reject",
                        "sp=bogus", "adkim=s", "aspf=r", "pct=50", "pct=-1", "pct=1000",
                        "rua=mailto:a@example.org", "rua=,,", "ruf=mailto:x", "fo=1:d",
                        "fo=x", "ri=0", "ri=99999999999", "=", ";", " ", "V=DMARC1",
                        "p=REJECT", "unknown=1"])
RECORDS = st.lists(TAGS, max_size=12).map("; ".join) | st.text(max_size=300)
FAST = settings(max_examples=500, deadline=None)


@FAST
@given(RECORDS)
@example("v=DMARC1; p=reject; pct=007")
@example("v=DMARC1;;;;p=none")
def test_records_parse_within_the_rfcs_ranges_or_fail_cleanly(text: str) -> None:
    try:
        record = parse_record(text)
    except (NotDmarcRecordError, DmarcRecordError):
        return
    assert record.policy in POLICIES
    assert record.subdomain_policy in ("", *POLICIES)
    assert record.adkim in ("r", "s")
    assert record.aspf in ("r", "s")
    assert 0 <= record.pct <= 100
    assert 0 <= record.ri < 2**32
    assert set(record.fo) <= {"0", "1", "d", "s"}


FIELDS = st.sampled_from([
    b"From: a@example.org", b"From: <a@example.org>, b@example.net", b"from:A@EXAMPLE.ORG",
    b" folded <c@example.com>", b"\tfolded", b"From:", b"From: group:;", b"From: \xff\xfe@x",
    b"From: \"q\\\"x@evil.test\" <a@example.org>", b"From: a@[127.0.0.1]",
    b"From: a@xn--bcher-kva.example", b"From: a@b\xc3\xbccher.example", b"no colon",
    b"Subject: hi", b"From: a@" + b"x" * 300 + b".org", b"From: (comment) a@example.org",
    b"From: a@example.org.", b"From: @", b"From: a@-bad-.example", b""])
HEADERS = st.lists(FIELDS, max_size=8).map(b"\r\n".join) | st.binary(max_size=400)


@FAST
@given(HEADERS, st.binary(max_size=50))
def test_author_domains_never_raise(header: bytes, body: bytes) -> None:
    domains, problem = author_domains(header + b"\r\n\r\n" + body)
    assert isinstance(problem, str)
    assert bool(domains) or problem
    for domain in domains:
        assert domain.isascii()
        assert domain == domain.lower()
        assert organizational_domain(domain)


POLICY = st.builds(lambda text: Discovery("found", parse_record(text), "example.org"),
                   st.sampled_from(["v=DMARC1; p=reject; sp=quarantine; pct=50",
                                    "v=DMARC1; p=none; adkim=s; aspf=s"]))


@FAST
@given(HEADERS, POLICY, st.sampled_from(["pass", "fail", "temperror", "none"]),
       st.text(max_size=40), st.integers(0, 2**32))
def test_every_resinfo_fits_a_check_result(header: bytes, found: Discovery, spf: str,
                                           spf_domain: str, seed: int) -> None:
    domains, _ = author_domains(header + b"\r\n\r\n")
    ids = Identifiers(spf, spf_domain, ((spf, spf_domain),))
    for domain in domains:
        result = evaluate(domain, found, ids, random.Random(seed))
        CheckResult("auth", Verdict.ACCEPT, auth_results=(result.resinfo,))   # validates
