"""SPF outcome formatting, the resolver adapter's configuration, the settings, and the
defined results for inputs pyspf never sees (no client address, a lookup that breaks).

DNS behaviour (timeouts, SERVFAIL, limits, the RFC 7208 suite) is tested over a real Knot
DNS in tests/integration/test_spf_rfc7208.py and test_spf_hostile.py.
"""

from __future__ import annotations

import asyncio

import pytest
import spf  # type: ignore[import-untyped]

from appliance.checks.auth_dns import make_sync_resolver
from appliance.checks.spf import (
    MAX_EXPLANATION,
    DnsAnswer,
    SpfChecker,
    SpfOutcome,
    clean_explanation,
    evaluate,
)
from appliance.settings import SettingsError, load_settings


@pytest.mark.parametrize(("outcome", "resinfo"), [
    (SpfOutcome("pass", "example.org", "mailfrom", "", "user@example.org"),
     "spf=pass smtp.mailfrom=user@example.org"),
    (SpfOutcome("none", "mx.example.org", "helo", "", "mx.example.org"),
     "spf=none smtp.helo=mx.example.org"),
    (SpfOutcome("fail", "example.org", "mailfrom", ""),          # no identity: the domain
     "spf=fail smtp.mailfrom=example.org"),
    (SpfOutcome("pass", "example.org", "mailfrom", "", '"a;b c"@example.org'),
     "spf=pass smtp.mailfrom=example.org"),                      # quoted local part: domain
    (SpfOutcome("none", "[192.0.2.1]", "helo", "", "[192.0.2.1]"),
     'spf=none smtp.helo="[192.0.2.1]"'),
    (SpfOutcome("none", "", "helo", "", ""), 'spf=none smtp.helo=""'),
    (SpfOutcome("permerror", "x", "helo", "", 'bad;"helo\\\r\n'),
     'spf=permerror smtp.helo="badhelo??"'),
    (SpfOutcome("pass", "exämple.org", "mailfrom", "", "ü@exämple.org"),
     'spf=pass smtp.mailfrom="?@ex?mple.org"'),
    (SpfOutcome("softfail", "EXAMPLE.org", "mailfrom", "", "first.last+tag@EXAMPLE.org."),
     "spf=softfail smtp.mailfrom=first.last+tag@EXAMPLE.org."),
])
def test_resinfo(outcome: SpfOutcome, resinfo: str) -> None:
    assert outcome.resinfo == resinfo


def test_explanations_are_cleaned_for_the_log() -> None:
    assert clean_explanation("ok\r\nInjected: \x00é") == "ok??Injected: ??"
    assert len(clean_explanation("x" * 5000)) == MAX_EXPLANATION


def no_dns(name: str, qtype: str, timeout: float) -> DnsAnswer:
    raise AssertionError(f"no DNS expected, asked {name} {qtype}")


def test_a_client_without_an_ip_address_is_none() -> None:
    outcome = evaluate("unix-socket", "mx.example.org", "a@example.org", no_dns)
    assert (outcome.result, outcome.scope, outcome.domain) == ("none", "mailfrom", "example.org")


def test_a_lookup_that_breaks_is_a_temperror_not_a_crash() -> None:
    def broken(name: str, qtype: str, timeout: float) -> DnsAnswer:
        raise RuntimeError("boom")

    outcome = evaluate("192.0.2.1", "mx.example.org", "a@example.org", broken)
    assert outcome.result == "temperror"
    assert outcome.explanation == "internal error: RuntimeError: boom"


def test_pyspf_outside_an_evaluation_never_asks_the_system_resolver() -> None:
    evaluate("192.0.2.1", "", "", no_dns)         # installs the dispatcher
    with pytest.raises(spf.TempError):
        spf.DNSLookup("example.org", "TXT", True, 1)


def test_the_resolver_adapter_asks_the_configured_server() -> None:
    resolver = make_sync_resolver("127.0.0.1:5353", 2.5)
    assert (resolver.nameservers, resolver.port) == (["127.0.0.1"], 5353)
    assert resolver.lifetime == 2.5
    v6 = make_sync_resolver("[::1]:53", 1)
    assert (v6.nameservers, v6.port) == (["::1"], 53)
    with pytest.raises(ValueError):
        make_sync_resolver("resolver.example.org", 1)


def test_settings_defaults_and_bounds() -> None:
    settings = load_settings(None, environ={})
    assert settings.get_int("checks.dns_timeout") == 5
    assert settings.get_int("checks.spf_time_limit") == 20     # RFC 7208 4.6.4's minimum
    with pytest.raises(SettingsError, match=r"checks\.spf_time_limit"):
        load_settings(None, environ={"MAILSTEAD_CHECKS__SPF_TIME_LIMIT": "5"})
    with pytest.raises(SettingsError, match=r"checks\.dns_timeout"):
        load_settings(None, environ={"MAILSTEAD_CHECKS__DNS_TIMEOUT": "0"})


def test_checker_from_settings() -> None:
    settings = load_settings(None, environ={"MAILSTEAD_OUTBOUND__RESOLVER": "127.0.0.1:53",
                                            "MAILSTEAD_CHECKS__DNS_TIMEOUT": "3",
                                            "MAILSTEAD_SERVER__HOSTNAME": "mx.example.net"})
    checker = SpfChecker.from_settings(settings)
    try:
        assert (checker.timeout, checker.time_limit, checker.receiver) == \
            (3.0, 20.0, "mx.example.net")
        # No client address: answered without DNS, through the async path.
        outcome = asyncio.run(checker.check("", "mx.example.org", ""))
        assert outcome == SpfOutcome("none", "mx.example.org", "helo", "no client IP address",
                                     "mx.example.org")
    finally:
        checker.close()
