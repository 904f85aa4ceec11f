"""The authentication check object (appliance/checks/authentication.py) with its real parts
(SpfChecker, DKIM verifier, ARC, DMARC) against Knot: subdomain policy discovery through
the Organizational Domain with sp=, strict alignment, pct= sampling with a seeded random
source, and `context.auth` as the later checks read it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from appliance.checks.auth_dns import TxtLookup
from appliance.checks.authentication import AuthenticationCheck
from appliance.checks.context import MessageContext
from appliance.checks.result import CheckResult, Verdict
from appliance.checks.spf import SpfChecker
from appliance.smtp import replies
from harness.arc_chain import Signer, txt_zone_line
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(120)
ORG = Signer("org.test", "s1")
SUB_SIGNER = Signer("mail.org.test", "s1")
ZONES = {
    "org.test": ['_dmarc TXT "v=DMARC1; p=reject; sp=quarantine; adkim=s"',
                 '_dmarc.strict TXT "v=DMARC1; p=reject; aspf=s"',
                 'strict TXT "v=spf1 ip4:192.0.2.0/24 -all"',
                 'bounces TXT "v=spf1 ip4:192.0.2.0/24 -all"',
                 'relay TXT "v=spf1 ip4:192.0.2.7 -all"',
                 txt_zone_line("s1._domainkey", ORG.key.record),
                 txt_zone_line("s1._domainkey.mail", SUB_SIGNER.key.record)],
    "half.test": ['_dmarc TXT "v=DMARC1; p=reject; pct=50"'],
}


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    with KnotDns(tmp_path_factory.mktemp("policy-knot"),
                 {name: zone_text(name, lines) for name, lines in ZONES.items()}) as server:
        yield server


def make_check(knot: KnotDns, seed: int = 1) -> AuthenticationCheck:
    return AuthenticationCheck(SpfChecker(knot.resolver_spec, 2.0),
                               TxtLookup(knot.resolver_spec, 2.0), max_signatures=10,
                               rng=random.Random(seed))


def message(author: str, subject: str = "hi") -> bytes:
    return (f"From: {author}\r\nTo: carol@inbox.test\r\nSubject: {subject}\r\n"
            "Message-ID: <p1@org.test>\r\n\r\nbody\r\n").encode()


def run(check: AuthenticationCheck, data: bytes, mail_from: str = "x@else.test",
        ip: str = "203.0.113.9") -> tuple[CheckResult, MessageContext]:
    context = MessageContext("Q", ip, helo="client.else.test", mail_from=mail_from)
    return asyncio.run(check.check(data, context)), context


def test_a_subdomain_author_gets_the_organizations_sp(knot: KnotDns) -> None:
    result, context = run(make_check(knot), message("a@news.org.test"))
    assert result.verdict == Verdict.JUNK
    assert "dmarc=fail (p=quarantine dis=quarantine) header.from=news.org.test" in \
        result.auth_results
    assert context.auth is not None
    assert (context.auth.dmarc, context.auth.dmarc_policy) == ("fail", "quarantine")


def test_the_organization_itself_gets_p_reject(knot: KnotDns) -> None:
    result, _ = run(make_check(knot), message("a@org.test"))
    assert (result.verdict, result.reply) == (Verdict.REJECT, replies.DMARC_REJECTED)


def test_strict_dkim_alignment_refuses_a_subdomains_signature(knot: KnotDns) -> None:
    signed = SUB_SIGNER.dkim_sign(message("a@org.test"))
    result, context = run(make_check(knot), signed)
    assert any("dkim=pass header.d=mail.org.test" in p for p in result.auth_results)
    assert result.verdict == Verdict.REJECT                      # adkim=s
    assert context.auth is not None
    assert context.auth.dkim_pass == ("mail.org.test",)
    exact = ORG.dkim_sign(message("a@org.test"))
    assert run(make_check(knot), exact)[0].verdict == Verdict.ACCEPT


def test_strict_spf_alignment(knot: KnotDns) -> None:
    """_dmarc.strict.org.test has aspf=s: SPF for bounces.org.test passes but does not
    align with strict.org.test; SPF for strict.org.test itself does."""
    author = message("a@strict.org.test")
    relaxed_only, _ = run(make_check(knot), author, "b@bounces.org.test", "192.0.2.7")
    assert "spf=pass smtp.mailfrom=b@bounces.org.test" in relaxed_only.auth_results
    assert relaxed_only.verdict == Verdict.REJECT
    exact, context = run(make_check(knot), author, "b@strict.org.test", "192.0.2.7")
    assert exact.verdict == Verdict.ACCEPT
    assert context.auth is not None
    assert context.auth.authenticated_domains == frozenset({"strict.org.test"})


def test_pct_50_rejects_about_half_and_sends_the_rest_to_junk(knot: KnotDns) -> None:
    def verdicts(seed: int) -> list[Verdict]:
        check = make_check(knot, seed)
        return [run(check, message("a@half.test", f"m{i}"))[0].verdict for i in range(40)]

    first = verdicts(5)
    assert set(first) == {Verdict.REJECT, Verdict.JUNK}
    assert 10 <= first.count(Verdict.REJECT) <= 30
    assert verdicts(5) == first                                  # seeded: repeatable


def test_a_dmarc_failure_under_p_none_adds_spam_points(knot: KnotDns,
                                                       tmp_path_factory: pytest.TempPathFactory
                                                       ) -> None:
    zones = {"relaxed.test": zone_text("relaxed.test", ['_dmarc TXT "v=DMARC1; p=none"',
                                                        '@ TXT "v=spf1 -all"'])}
    with KnotDns(tmp_path_factory.mktemp("none-knot"), zones) as other:
        check = AuthenticationCheck(SpfChecker(other.resolver_spec, 2.0),
                                    TxtLookup(other.resolver_spec, 2.0), max_signatures=10)
        result, context = run(check, message("a@relaxed.test"), "a@relaxed.test")
    assert result.verdict == Verdict.ACCEPT
    assert context.score_parts == [("SPF_FAIL", 1.0), ("DMARC_FAIL", 2.0)]


def test_the_helo_identity_gets_its_own_spf_result(knot: KnotDns) -> None:
    """RFC 7208 2.3: HELO is checked too and reported as `smtp.helo`; DMARC still uses the
    MAIL FROM result. No HELO result for the null sender (its MAIL FROM check is the HELO
    check) or an address literal."""
    check = make_check(knot)
    for ip, expected in (("192.0.2.7", "pass"), ("198.51.100.1", "fail")):
        context = MessageContext("Q", ip, helo="relay.org.test", mail_from="b@bounces.org.test")
        result = asyncio.run(check.check(message("a@org.test"), context))
        assert f"spf={expected} smtp.helo=relay.org.test" in result.auth_results
        assert any(p.startswith("spf=") and "smtp.mailfrom=b@bounces.org.test" in p
                   for p in result.auth_results)
    for helo, mail_from in (("relay.org.test", ""), ("[192.0.2.7]", "b@bounces.org.test")):
        context = MessageContext("Q", "192.0.2.7", helo=helo, mail_from=mail_from)
        result = asyncio.run(check.check(message("a@org.test"), context))
        assert sum(p.startswith("spf=") for p in result.auth_results) == 1
