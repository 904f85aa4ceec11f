"""DMARC's pure rules (RFC 7489): record parsing (6.3, 6.6.3 step 6), Organizational
Domains (3.2), strict and relaxed alignment (3.1), policy discovery with sp= (6.6.3), pct=
sampling (6.6.4), authors (6.6.1) and the resinfo (11.2). Discovery gets its TXT answers
from a table (a real function answering as DNS would), not from a mock."""

from __future__ import annotations

import asyncio
import random

import pytest

from appliance.checks import dmarc
from appliance.checks.dmarc import (
    Discovery,
    DmarcRecord,
    DmarcRecordError,
    Identifiers,
    NotDmarcRecordError,
    aligned,
    author_domains,
    discover,
    evaluate,
    organizational_domain,
    parse_record,
    sampled_disposition,
)

# -- records --------------------------------------------------------------------------------


def test_a_full_record_parses_every_tag() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=20; "
                          "rua=mailto:agg@example.org,mailto:b@example.net!10m; "
                          "ruf=mailto:f@example.org; fo=1:d; ri=3600")
    assert record == DmarcRecord("reject", "quarantine", "s", "s", 20,
                                 ("mailto:agg@example.org", "mailto:b@example.net!10m"),
                                 ("mailto:f@example.org",), ("1", "d"), 3600)


def test_defaults_are_the_rfcs() -> None:
    assert parse_record("v=DMARC1; p=none") == DmarcRecord("none")
    record = parse_record("v=DMARC1;p=REJECT;")        # values are case-insensitive
    assert (record.policy, record.adkim, record.aspf, record.pct) == ("reject", "r", "r", 100)


@pytest.mark.parametrize("text", [
    "", "p=reject", "v=DMARC2; p=reject", "v=dmarc1; p=reject", "p=reject; v=DMARC1",
    "v=spf1 -all", "x" * 5000])
def test_not_a_dmarc_record(text: str) -> None:
    with pytest.raises(NotDmarcRecordError):
        parse_record(text)


@pytest.mark.parametrize("text", ["v=DMARC1", "v=DMARC1; p=bounce", "v=DMARC1; p=reject; sp=x",
                                  "v=DMARC1; rua=not a uri"])
def test_no_valid_policy_and_no_rua_is_unusable(text: str) -> None:
    with pytest.raises(DmarcRecordError):
        parse_record(text)


def test_no_valid_policy_but_rua_acts_as_p_none() -> None:
    """RFC 7489 6.6.3 step 6."""
    record = parse_record("v=DMARC1; p=bogus; rua=mailto:d@example.org")
    assert (record.policy, record.subdomain_policy) == ("none", "")


def test_bad_optional_values_keep_the_defaults_and_the_policy() -> None:
    record = parse_record("v=DMARC1; p=reject; pct=150; adkim=x; aspf=; fo=9; ri=-1; "
                          "unknown=tag; broken")
    assert record == DmarcRecord("reject")


def test_the_first_of_a_repeated_tag_counts() -> None:
    assert parse_record("v=DMARC1; p=none; p=reject").policy == "none"


# -- organizational domains and alignment -------------------------------------------------

@pytest.mark.parametrize(("domain", "org"), [
    ("example.org", "example.org"), ("a.b.example.org", "example.org"),
    ("mail.example.co.uk", "example.co.uk"), ("EXAMPLE.ORG.", "example.org"),
    ("x.example.test", "example.test"), ("co.uk", "co.uk"), ("org", "org"),
])
def test_organizational_domain_uses_the_public_suffix_list(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


@pytest.mark.parametrize(("author", "identifier", "mode", "expected"), [
    ("example.org", "example.org", "s", True),
    ("example.org", "EXAMPLE.org.", "s", True),
    ("example.org", "mail.example.org", "s", False),
    ("example.org", "mail.example.org", "r", True),
    ("news.example.org", "bounce.example.org", "r", True),
    ("news.example.org", "bounce.example.org", "s", False),
    ("example.org", "example.net", "r", False),
    ("example.co.uk", "other.co.uk", "r", False),      # a shared public suffix is no org
    ("example.org", "", "r", False),
])
def test_alignment(author: str, identifier: str, mode: str, expected: bool) -> None:
    assert aligned(author, identifier, mode) is expected


# -- discovery -------------------------------------------------------------------------------

def table(records: dict[str, list[str]], failing: frozenset[str] = frozenset()) -> dmarc.Lookup:
    """A lookup answering from `records`; names in `failing` time out."""
    async def lookup(name: str) -> tuple[bytes, ...]:
        if name in failing:
            raise TimeoutError(name)
        return tuple(r.encode() for r in records.get(name, []))
    return lookup


def run_discover(author: str, lookup: dmarc.Lookup) -> Discovery:
    return asyncio.run(discover(author, lookup))


def test_the_from_domains_own_record_wins() -> None:
    lookup = table({"_dmarc.mail.example.org": ["v=DMARC1; p=quarantine"],
                    "_dmarc.example.org": ["v=DMARC1; p=reject"]})
    found = run_discover("mail.example.org", lookup)
    assert (found.status, found.found_at, found.record and found.record.policy) == \
        ("found", "mail.example.org", "quarantine")


def test_falls_back_to_the_organizational_domain_ignoring_other_txt() -> None:
    lookup = table({"_dmarc.mail.example.org": ["v=spf1 -all", "hello"],
                    "_dmarc.example.org": ["some text", "v=DMARC1; p=reject; sp=none"]})
    found = run_discover("mail.example.org", lookup)
    assert (found.status, found.found_at) == ("found", "example.org")


def test_no_record_anywhere_is_none() -> None:
    assert run_discover("a.example.org", table({})).status == "none"


def test_several_records_is_permerror() -> None:
    lookup = table({"_dmarc.example.org": ["v=DMARC1; p=none", "v=DMARC1; p=reject"]})
    assert run_discover("example.org", lookup).status == "permerror"


def test_an_unusable_record_is_permerror_and_stops_discovery() -> None:
    lookup = table({"_dmarc.a.example.org": ["v=DMARC1; p=nonsense"],
                    "_dmarc.example.org": ["v=DMARC1; p=reject"]})
    assert run_discover("a.example.org", lookup).status == "permerror"


def test_a_failed_lookup_is_temperror() -> None:
    lookup = table({"_dmarc.example.org": ["v=DMARC1; p=reject"]},
                   failing=frozenset({"_dmarc.a.example.org"}))
    assert run_discover("a.example.org", lookup).status == "temperror"


# -- evaluation -------------------------------------------------------------------------------

RNG = random.Random(7)
REJECT_ORG = Discovery("found", parse_record("v=DMARC1; p=reject; sp=quarantine"),
                       "example.org")


def outcome(author: str, found: Discovery, ids: Identifiers,
            rng: random.Random = RNG) -> tuple[str, str, str]:
    r = evaluate(author, found, ids, rng)
    return r.result, r.policy, r.disposition


def test_aligned_dkim_passes() -> None:
    ids = Identifiers(dkim=(("pass", "mail.example.org"),))
    assert outcome("example.org", REJECT_ORG, ids) == ("pass", "reject", "none")


def test_aligned_spf_passes() -> None:
    ids = Identifiers("pass", "bounces.example.org")
    assert outcome("example.org", REJECT_ORG, ids) == ("pass", "reject", "none")


def test_unaligned_passes_fail() -> None:
    ids = Identifiers("pass", "esp.example.net", (("pass", "esp.example.net"),))
    assert outcome("example.org", REJECT_ORG, ids) == ("fail", "reject", "reject")


def test_failed_dkim_of_the_domain_does_not_count() -> None:
    ids = Identifiers("fail", "example.org", (("fail", "example.org"),))
    assert outcome("example.org", REJECT_ORG, ids)[0] == "fail"


def test_strict_dkim_alignment_refuses_a_subdomain_signature() -> None:
    strict = Discovery("found", parse_record("v=DMARC1; p=reject; adkim=s"), "example.org")
    ids = Identifiers(dkim=(("pass", "mail.example.org"),))
    assert outcome("example.org", strict, ids)[0] == "fail"
    assert outcome("example.org", strict, Identifiers(dkim=(("pass", "example.org"),)))[0] \
        == "pass"


def test_strict_spf_alignment_refuses_a_subdomain_sender() -> None:
    strict = Discovery("found", parse_record("v=DMARC1; p=reject; aspf=s"), "example.org")
    assert outcome("example.org", strict, Identifiers("pass", "bounce.example.org"))[0] \
        == "fail"
    assert outcome("example.org", strict, Identifiers("pass", "example.org"))[0] == "pass"


def test_sp_applies_to_subdomains_only() -> None:
    ids = Identifiers()
    assert outcome("news.example.org", REJECT_ORG, ids) == ("fail", "quarantine", "quarantine")
    assert outcome("example.org", REJECT_ORG, ids) == ("fail", "reject", "reject")
    no_sp = Discovery("found", parse_record("v=DMARC1; p=reject"), "example.org")
    assert outcome("news.example.org", no_sp, ids)[1] == "reject"


def test_sp_does_not_apply_to_a_record_of_the_from_domain_itself() -> None:
    own = Discovery("found", parse_record("v=DMARC1; p=quarantine; sp=reject"),
                    "news.example.org")
    assert outcome("news.example.org", own, Identifiers())[1] == "quarantine"


def test_an_aligned_temperror_makes_a_failure_temperror() -> None:
    ids = Identifiers("temperror", "example.org", (("fail", "example.org"),))
    assert outcome("example.org", REJECT_ORG, ids)[0] == "temperror"
    ids = Identifiers("fail", "example.net", (("temperror", "mail.example.org"),))
    assert outcome("example.org", REJECT_ORG, ids)[0] == "temperror"
    unaligned = Identifiers("temperror", "example.net")
    assert outcome("example.org", REJECT_ORG, unaligned)[0] == "fail"


@pytest.mark.parametrize("status", ["none", "temperror", "permerror"])
def test_no_usable_policy_passes_the_status_on(status: str) -> None:
    assert outcome("example.org", Discovery(status), Identifiers()) == (status, "", "none")


# -- pct= (RFC 7489 6.6.4) ------------------------------------------------------------------

def test_pct_applies_the_policy_to_the_sample_and_the_next_weaker_to_the_rest() -> None:
    rng = random.Random(1234)
    got = [sampled_disposition("reject", 30, rng) for _ in range(2000)]
    assert set(got) == {"reject", "quarantine"}
    assert 0.25 < got.count("reject") / len(got) < 0.35
    rng = random.Random(1234)
    again = [sampled_disposition("reject", 30, rng) for _ in range(2000)]
    assert again == got                                  # a seeded source repeats
    quarantine = {sampled_disposition("quarantine", 50, rng) for _ in range(200)}
    assert quarantine == {"quarantine", "none"}


@pytest.mark.parametrize(("pct", "expected"), [(0, "quarantine"), (100, "reject")])
def test_pct_edges(pct: int, expected: str) -> None:
    rng = random.Random(0)
    assert {sampled_disposition("reject", pct, rng) for _ in range(100)} == {expected}


def test_pct_zero_in_a_record_downgrades_every_failure() -> None:
    found = Discovery("found", parse_record("v=DMARC1; p=reject; pct=0"), "example.org")
    result = evaluate("example.org", found, Identifiers(), random.Random(3))
    assert (result.result, result.policy, result.disposition) == \
        ("fail", "reject", "quarantine")
    assert result.resinfo == "dmarc=fail (p=reject dis=quarantine) header.from=example.org"


# -- authors (RFC 7489 6.6.1) ----------------------------------------------------------------

@pytest.mark.parametrize(("header", "domains", "problem"), [
    (b"From: Alice <alice@Example.ORG>\r\n", ("example.org",), ""),
    (b"From: alice@example.org\r\n", ("example.org",), ""),
    (b'From: "Mallory, <m@evil.test>" <alice@example.org>\r\n', ("example.org",), ""),
    (b"From: Alice\r\n <alice@example.org>\r\n", ("example.org",), ""),     # folded
    (b"FROM: a@b\xc3\xa9.example\r\n", ("xn--b-bga.example",), ""),
    (b"From: a@example.org, b@example.net\r\n", ("example.org", "example.net"),
     "2 author addresses in From"),
    (b"From: a@example.org, b@example.org\r\n", ("example.org",),
     "2 author addresses in From"),
    (b"From: a@example.org\r\nFrom: b@evil.test\r\n", ("example.org", "evil.test"),
     "2 From header fields"),
    (b"Subject: x\r\n", (), "no From header field"),
    (b"From: undisclosed-recipients:;\r\n", (), "no author address with a domain in From"),
    (b"From: nobody\r\n", (), "no author address with a domain in From"),
])
def test_author_domains(header: bytes, domains: tuple[str, ...], problem: str) -> None:
    message = b"To: x@example.test\r\n" + header + b"\r\nFrom: body@not.header\r\n"
    assert author_domains(message) == (domains, problem)

def test_check_evaluates_every_author_and_the_strictest_counts() -> None:
    lookup = table({"_dmarc.example.org": ["v=DMARC1; p=none"],
                    "_dmarc.evil.test": ["v=DMARC1; p=reject"]})
    message = b"From: a@example.org\r\nFrom: b@evil.test\r\n\r\nbody\r\n"
    ids = Identifiers(dkim=(("pass", "example.org"),))
    result = asyncio.run(dmarc.check(message, ids, lookup, random.Random(1)))
    assert (result.result, result.policy, result.disposition) == ("fail", "reject", "reject")
    assert result.resinfo == ("dmarc=pass (p=none dis=none) header.from=example.org",
                              "dmarc=fail (p=reject dis=reject) header.from=evil.test")
    assert result.problem == "2 From header fields"


def test_check_without_from_is_permerror_without_policy() -> None:
    result = asyncio.run(dmarc.check(b"Subject: x\r\n\r\n", Identifiers(), table({}),
                                     random.Random(1)))
    assert (result.result, result.disposition, result.policy) == ("permerror", "none", "")
    assert result.resinfo == ("dmarc=permerror (no From header field)",)


def test_resinfo_of_each_result() -> None:
    lookup = table({"_dmarc.example.org": ["v=DMARC1; p=quarantine"]})
    message = b"From: a@example.org\r\n\r\n"
    passed = asyncio.run(dmarc.check(message, Identifiers("pass", "example.org"), lookup,
                                     random.Random(1)))
    assert passed.resinfo == ("dmarc=pass (p=quarantine dis=none) header.from=example.org",)
    none = asyncio.run(dmarc.check(b"From: a@example.net\r\n\r\n", Identifiers(), lookup,
                                   random.Random(1)))
    assert none.resinfo == ("dmarc=none header.from=example.net",)
    assert none.result == "none"
