"""The authentication check's own rules (appliance/checks/authentication.py): what a DMARC
outcome decides (reject, Junk, tag, accept), the trusted-ARC override, spam points,
`context.auth`, the trusted-sealer setting, and the check's place in the pipeline."""

from __future__ import annotations

import asyncio

import pytest

from appliance.checks.arc import ArcOutcome
from appliance.checks.auth_dns import TxtLookup
from appliance.checks.authentication import (
    AuthenticationCheck,
    auth_outcome,
    decide,
    parse_sealers,
    score_parts,
)
from appliance.checks.context import MessageContext
from appliance.checks.dkim_verify import DkimResult
from appliance.checks.dmarc import AuthorResult, DmarcOutcome
from appliance.checks.pipeline import build_checks
from appliance.checks.result import Verdict
from appliance.checks.spf import SpfOutcome
from appliance.settings import SettingsError, load_settings

NO_ARC = ArcOutcome("none", (), "arc=none")
TRUSTED = frozenset({"lists.example.net"})


def dmarc(result: str, policy: str = "", disposition: str = "none",
          domain: str = "example.org") -> DmarcOutcome:
    return DmarcOutcome((AuthorResult(domain, result, policy, disposition),))


@pytest.mark.parametrize(("outcome", "verdict"), [
    (dmarc("pass", "reject"), Verdict.ACCEPT),
    (dmarc("none"), Verdict.ACCEPT),
    (dmarc("permerror"), Verdict.ACCEPT),
    (dmarc("temperror"), Verdict.TAG),
    (dmarc("fail", "none"), Verdict.ACCEPT),
    (dmarc("fail", "quarantine", "quarantine"), Verdict.JUNK),
    (dmarc("fail", "reject", "reject"), Verdict.REJECT),
    (dmarc("fail", "reject", "quarantine"), Verdict.JUNK),         # outside pct=
    (dmarc("fail", "quarantine", "none"), Verdict.ACCEPT),          # outside pct=
])
def test_dmarc_decides(outcome: DmarcOutcome, verdict: Verdict) -> None:
    assert decide(outcome, NO_ARC, TRUSTED)[0] == verdict


@pytest.mark.parametrize("disposition", ["reject", "quarantine"])
def test_a_passing_chain_whose_newest_seal_we_trust_overrides(disposition: str) -> None:
    arc = ArcOutcome("pass", ("origin.example", "Lists.Example.NET"), "arc=pass")
    verdict, reason = decide(dmarc("fail", disposition, disposition), arc, TRUSTED)
    assert verdict == Verdict.ACCEPT
    assert reason.endswith("overridden: ARC sealed by Lists.Example.NET")


@pytest.mark.parametrize("arc", [
    ArcOutcome("pass", ("lists.example.net", "other.example"), "arc=pass"),  # not newest
    ArcOutcome("fail", (), "arc=fail", "bad seal"),
    ArcOutcome("pass", ("untrusted.example",), "arc=pass"),
])
def test_other_chains_do_not_override(arc: ArcOutcome) -> None:
    assert decide(dmarc("fail", "reject", "reject"), arc, TRUSTED)[0] == Verdict.REJECT


def test_a_chain_failed_by_dns_defers_a_reject_when_we_trust_lists() -> None:
    arc = ArcOutcome("fail", (), "arc=fail", "dns: timeout for ms._domainkey.lists.example")
    verdict, reason = decide(dmarc("fail", "reject", "reject"), arc, TRUSTED)
    assert verdict == Verdict.TEMPFAIL
    assert "ARC key lookup failed" in reason
    assert decide(dmarc("fail", "reject", "reject"), arc, frozenset())[0] == Verdict.REJECT
    assert decide(dmarc("fail", "quarantine", "quarantine"), arc, TRUSTED)[0] == Verdict.JUNK


def test_no_trusted_sealers_by_default_means_no_override() -> None:
    arc = ArcOutcome("pass", ("lists.example.net",), "arc=pass")
    assert decide(dmarc("fail", "reject", "reject"), arc, frozenset())[0] == Verdict.REJECT


def test_the_strictest_author_decides() -> None:
    both = DmarcOutcome((AuthorResult("example.org", "pass", "none"),
                         AuthorResult("evil.test", "fail", "reject", "reject")))
    verdict, reason = decide(both, NO_ARC, TRUSTED)
    assert verdict == Verdict.REJECT
    assert reason == "dmarc fail for example.org,evil.test p=reject dis=reject"


SPF_PASS = SpfOutcome("pass", "example.org", "mailfrom", "", "a@example.org")


@pytest.mark.parametrize(("spf", "outcome", "parts"), [
    (SPF_PASS, dmarc("pass"), []),
    (SpfOutcome("fail", "x.test", "mailfrom", ""), dmarc("none"), [("SPF_FAIL", 1.0)]),
    (SpfOutcome("softfail", "x.test", "mailfrom", ""), dmarc("none"),
     [("SPF_SOFTFAIL", 0.5)]),
    (SPF_PASS, dmarc("fail", "none"), [("DMARC_FAIL", 2.0)]),
    (SPF_PASS, dmarc("fail", "reject", "reject"), []),     # acted on: no extra points
    (SPF_PASS, dmarc("temperror"), []),
])
def test_spam_points_for_failures_no_policy_acts_on(
        spf: SpfOutcome, outcome: DmarcOutcome, parts: list[tuple[str, float]]) -> None:
    assert score_parts(spf, outcome) == parts


def test_auth_outcome_records_what_later_checks_read() -> None:
    dkim = (DkimResult("pass", "example.org", "s"), DkimResult("fail", "example.net", "s"),
            DkimResult("pass", "esp.example", "t"))
    arc = ArcOutcome("pass", ("lists.example.net",), "arc=pass")
    found = auth_outcome(SPF_PASS, dkim, arc, dmarc("pass", "reject"))
    assert found.from_domain == "example.org"
    assert found.dkim_pass == ("example.org", "esp.example")
    assert (found.spf, found.spf_domain, found.arc, found.dmarc) == \
        ("pass", "example.org", "pass", "pass")
    assert found.arc_sealers == ("lists.example.net",)
    assert found.authenticated_domains == frozenset({"example.org", "esp.example"})


def test_failed_dmarc_records_the_policy() -> None:
    found = auth_outcome(SPF_PASS, (), NO_ARC, dmarc("fail", "quarantine", "none"))
    assert (found.dmarc, found.dmarc_policy) == ("fail", "quarantine")


@pytest.mark.parametrize(("text", "names"), [
    ("", frozenset()),
    ("lists.example.net", frozenset({"lists.example.net"})),
    (" A.example , b.example., ,", frozenset({"a.example", "b.example"})),
])
def test_trusted_sealers_parse(text: str, names: frozenset[str]) -> None:
    assert parse_sealers(text) == names


@pytest.mark.parametrize("text", ["not a domain", "a..b", "x@example.org", "-bad-.example"])
def test_bad_trusted_sealers_name_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match="not a domain name"):
        parse_sealers(text)
    with pytest.raises(SettingsError, match=r"checks\.arc_trusted_sealers"):
        load_settings(None, environ={"MAILSTEAD_CHECKS__ARC_TRUSTED_SEALERS": text})


def test_the_check_is_built_for_the_mx_only_and_can_be_turned_off() -> None:
    settings = load_settings(None, environ={})
    assert [type(c) for c in build_checks(settings)].count(AuthenticationCheck) == 1
    assert not any(isinstance(c, AuthenticationCheck)
                   for c in build_checks(settings, inbound=False))
    off = load_settings(None, environ={"MAILSTEAD_CHECKS__AUTHENTICATION": "false"})
    assert not any(isinstance(c, AuthenticationCheck) for c in build_checks(off))


def test_the_check_runs_after_the_virus_scan_and_before_the_rest() -> None:
    names = [c.name for c in build_checks(load_settings(None, environ={}))]
    assert names[:2] == ["clamav", "auth"]


class BrokenSpf:
    """An SPF source with a bug: the check must still give a result."""

    async def check(self, client_ip: str, helo: str, mail_from: str) -> SpfOutcome:
        raise RuntimeError("bug in the SPF source")


def test_an_internal_error_accepts_with_a_tag_and_no_results() -> None:
    check = AuthenticationCheck(BrokenSpf(), TxtLookup("127.0.0.1:9", 1.0), max_signatures=5)
    context = MessageContext("Q1", "192.0.2.1")
    result = asyncio.run(check.check(b"Subject: no From, no signature\r\n\r\nbody\r\n",
                                     context))
    assert (result.verdict, result.auth_results) == (Verdict.TAG, ())
    assert result.reason == "internal error: bug in the SPF source"
    assert context.auth is None
