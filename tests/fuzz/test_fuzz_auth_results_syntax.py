"""Every Authentication-Results field our checks can write parses as RFC 8601 (with authres,
the parser dkimpy's ARC sealing reads it with: a field it cannot parse means forwarded mail
leaves unsealed). The pieces come from the real outcome types of spf.py, dkim_verify.py,
arc.py and dmarc.py, with hostile values where the values come from the message or DNS."""

from __future__ import annotations

import authres  # type: ignore[import-untyped]  # no type hints
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.checks.arc import ArcOutcome
from appliance.checks.auth_results import results_header
from appliance.checks.dkim_verify import DkimResult
from appliance.checks.dmarc import AuthorResult, DmarcOutcome
from appliance.checks.spf import SpfOutcome

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
DOMAINS = st.sampled_from(["example.org", "a.b.example", "xn--bcher-kva.example", ""])
SPF_RESULTS = st.sampled_from(["pass", "fail", "softfail", "neutral", "none", "temperror",
                               "permerror"])
DKIM_RESULTS = st.sampled_from(["pass", "fail", "neutral", "policy", "temperror",
                                "permerror", "none"])
DMARC_RESULTS = st.sampled_from(["pass", "fail", "none", "temperror", "permerror"])


@st.composite
def spf(draw: st.DrawFn) -> SpfOutcome:
    domain = draw(DOMAINS) or "example.org"
    identity = draw(st.one_of(st.just(f"user@{domain}"), st.just(domain),
                              TEXT.map(lambda t: f"{t}@{domain}")))
    return SpfOutcome(draw(SPF_RESULTS), domain, draw(st.sampled_from(["mailfrom", "helo"])),
                      draw(TEXT), identity)


@st.composite
def dkim(draw: st.DrawFn) -> DkimResult:
    return DkimResult(draw(DKIM_RESULTS), draw(DOMAINS),
                      draw(st.sampled_from(["sel", "2026r", ""])),
                      draw(st.sampled_from(["pV/io+mL", "abc=", ""])), draw(TEXT))


@st.composite
def dmarc(draw: st.DrawFn) -> DmarcOutcome:
    authors = draw(st.lists(st.builds(
        AuthorResult, DOMAINS.filter(bool), DMARC_RESULTS,
        st.sampled_from(["", "none", "quarantine", "reject"]),
        st.sampled_from(["none", "quarantine", "reject"]), TEXT), max_size=2))
    return DmarcOutcome(tuple(authors), draw(st.sampled_from(["", "no From field",
                                                             "several From fields"])))


@settings(max_examples=300)
@given(spf(), st.lists(dkim(), max_size=3),
       st.sampled_from([ArcOutcome("none", (), "arc=none smtp.remote-ip=127.0.0.1"),
                        ArcOutcome("pass", ("l.example",), 'arc=pass smtp.remote-ip="::1"'),
                        ArcOutcome("fail", (), "arc=fail")]), dmarc())
def test_our_field_parses_with_authres(spf_outcome: SpfOutcome, dkims: list[DkimResult],
                                       arc: ArcOutcome, dmarc_outcome: DmarcOutcome) -> None:
    pieces = [spf_outcome.resinfo, *(d.resinfo for d in dkims), arc.resinfo,
              *dmarc_outcome.resinfo]
    field = results_header("mx.example.test", pieces)
    parsed = authres.AuthenticationResultsHeader.parse(field)
    assert parsed.authserv_id == "mx.example.test"
    assert [r.method for r in parsed.results] == [p.split("=", 1)[0] for p in pieces]
