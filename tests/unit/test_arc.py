"""ARC chain validation (appliance/checks/arc.py) on chains dkimpy seals in the test: the
mailing-list case that breaks DKIM but passes ARC, tampering, the 50-set limit, malformed
sets and failing key lookups. Keys come from a table here; test_arc_dns.py uses Knot."""

from __future__ import annotations

import re
import time
from typing import Any

import authres  # type: ignore[import-untyped]  # no type hints
import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from appliance.checks.arc import (
    MAX_ARC_SETS,
    ArcOutcome,
    resinfo,
    structure_problem,
    verify_chain,
)
from appliance.checks.auth_dns import DnsFunc
from harness.arc_chain import (
    Signer,
    dict_dns,
    list_rewrite,
    plain_message,
    records,
    two_hop_chain,
)


@pytest.fixture(scope="module")
def world() -> dict[str, Signer]:
    return {"author": Signer("origin.example"), "hop1": Signer("fwd.example.com"),
            "hop2": Signer("lists.example.net")}


@pytest.fixture(scope="module")
def chain(world: dict[str, Signer]) -> bytes:
    return two_hop_chain(world["author"], world["hop1"], world["hop2"])


@pytest.fixture(scope="module")
def dns(world: dict[str, Signer]) -> DnsFunc:
    return dict_dns(records(*world.values()))


def test_list_rewrite_breaks_dkim_but_arc_passes(chain: bytes, dns: DnsFunc) -> None:
    assert dkim.verify(chain, dnsfunc=dns) is False          # the list broke DKIM
    outcome = verify_chain(chain, dns, remote_ip="127.0.0.9")
    assert outcome == ArcOutcome("pass", ("fwd.example.com", "lists.example.net"),
                                 "arc=pass smtp.remote-ip=127.0.0.9", "")


def test_one_hop_chain_passes(world: dict[str, Signer], dns: DnsFunc) -> None:
    sealed = world["hop1"].seal(world["author"].dkim_sign(plain_message()), "none")
    outcome = verify_chain(sealed, dns)
    assert (outcome.cv, outcome.sealers, outcome.resinfo) == (
        "pass", ("fwd.example.com",), "arc=pass")


def test_no_arc_is_none(dns: DnsFunc) -> None:
    assert verify_chain(plain_message(), dns) == ArcOutcome("none", (), "arc=none", "")


def test_lf_line_ends_pass_too(chain: bytes, dns: DnsFunc) -> None:
    assert verify_chain(chain.replace(b"\r\n", b"\n"), dns).cv == "pass"


def test_tampered_seal_signature_fails(chain: bytes, dns: DnsFunc) -> None:
    # Flip one character of the newest ARC-Seal's b= value.
    seal_b = re.search(rb"ARC-Seal: i=2;.*?\bb=([A-Za-z0-9+/]{8})", chain, re.S)
    assert seal_b is not None
    start = seal_b.start(1)
    flipped = b"A" if chain[start:start + 1] != b"A" else b"B"
    outcome = verify_chain(chain[:start] + flipped + chain[start + 1:], dns)
    assert (outcome.cv, outcome.sealers) == ("fail", ())
    assert "ARC-Seal" in outcome.reason


def test_changed_cv_in_seal_fails(chain: bytes, dns: DnsFunc) -> None:
    outcome = verify_chain(chain.replace(b"i=2; cv=pass", b"i=2; cv=none", 1), dns)
    assert outcome.cv == "fail"


def test_changed_oldest_aar_fails(chain: bytes, dns: DnsFunc) -> None:
    # The AAR of set 1 is covered by seal 1 (RFC 8617 4.1.3).
    forged = chain.replace(b"ARC-Authentication-Results: i=1; fwd.example.com;\r\n dkim=pass",
                           b"ARC-Authentication-Results: i=1; fwd.example.com;\r\n dkim=fail")
    assert forged != chain
    assert verify_chain(forged, dns).cv == "fail"


def test_body_changed_after_last_seal_fails(chain: bytes, dns: DnsFunc) -> None:
    outcome = verify_chain(chain + b"appended after sealing\r\n", dns)
    assert outcome.cv == "fail"
    assert "Message-Signature" in outcome.reason


def test_missing_key_fails(chain: bytes, world: dict[str, Signer]) -> None:
    partial = dict_dns(records(world["author"], world["hop2"]))    # no key for hop 1
    outcome = verify_chain(chain, partial)
    assert outcome.cv == "fail"
    assert not outcome.dns_failed        # an answer (no record), not a failed lookup


def test_dns_failure_fails_fast_with_a_dns_reason(chain: bytes) -> None:
    asked: list[bytes] = []

    def broken(name: bytes, timeout: float = 5.0) -> bytes | None:
        asked.append(name)
        raise TimeoutError("resolver timed out")

    outcome = verify_chain(chain, broken)
    assert outcome.cv == "fail"
    assert outcome.reason.startswith("dns: s1._domainkey.lists.example.net.")
    assert outcome.dns_failed
    assert len(asked) == 1            # no second timeout once the chain has failed


def test_non_bytes_answer_is_no_key(chain: bytes) -> None:
    def odd(name: bytes, timeout: float = 5.0) -> Any:
        return 42
    assert verify_chain(chain, odd).cv == "fail"


def test_chain_sealed_as_failed_stays_failed(chain: bytes, world: dict[str, Signer],
                                             dns: DnsFunc) -> None:
    # A third hop found the chain broken and sealed with cv=fail (RFC 8617 5.1.2).
    broken = chain.replace(b"i=2; cv=pass", b"i=2; cv=none", 1)
    third = Signer("relay.example.org")
    resealed = third.seal(broken, "fail")
    assert b"i=3; cv=fail" in resealed
    table = records(*world.values(), third)
    outcome = verify_chain(resealed, dict_dns(table))
    assert (outcome.cv, outcome.resinfo) == ("fail", "arc=fail")


def _deep_chain(sealers: list[Signer], author: Signer) -> bytes:
    message = author.dkim_sign(plain_message())
    for instance, sealer in enumerate(sealers, start=1):
        message = sealer.seal(list_rewrite(message, f"[{instance}]"),
                              "none" if instance == 1 else "pass")
    return message


@pytest.fixture(scope="module")
def fifty(world: dict[str, Signer]) -> tuple[bytes, DnsFunc]:
    # 50 forwarders (each its own authserv-id, as dkimpy's sealing wants) sharing one key.
    key = Signer("hop.example.net").key
    sealers = [Signer(f"hop{n}.example.net", key=key) for n in range(1, MAX_ARC_SETS + 1)]
    return (_deep_chain(sealers, world["author"]),
            dict_dns(records(world["author"], *sealers)))


def test_fifty_sets_are_the_limit_and_pass(fifty: tuple[bytes, DnsFunc]) -> None:
    message, dns = fifty
    outcome = verify_chain(message, dns)
    assert outcome.cv == "pass"
    assert outcome.sealers == tuple(f"hop{n}.example.net" for n in range(1, 51))


def _extra_sets(message: bytes, upto: int) -> bytes:
    """Copies of set 50 numbered 51..upto in front of `message` (dkimpy refuses to seal a
    51st set, as RFC 8617 4.2.1 says a sealer must)."""
    newest = re.findall(rb"(?:ARC-Seal|ARC-Message-Signature|ARC-Authentication-Results): "
                        rb"i=50;.*?\r\n(?=\S)", message, re.S)
    assert len(newest) == 3
    extra = b"".join(field.replace(b"i=50;", f"i={n};".encode(), 1)
                     for n in range(upto, MAX_ARC_SETS, -1) for field in newest)
    return extra + message


def test_sixty_sets_fail(fifty: tuple[bytes, DnsFunc]) -> None:
    message, dns = fifty
    outcome = verify_chain(_extra_sets(message, 60), dns)
    assert outcome.cv == "fail"
    assert "more than 50" in outcome.reason


def test_fifty_one_sets_fail(fifty: tuple[bytes, DnsFunc]) -> None:
    message, dns = fifty
    outcome = verify_chain(_extra_sets(message, 51), dns)
    assert (outcome.cv, outcome.reason) == ("fail", "more than 50 ARC sets")


def test_header_block_dkimpy_cannot_parse(chain: bytes, dns: DnsFunc) -> None:
    assert verify_chain(b" leading continuation\r\n" + chain, dns).cv == "fail"
    assert verify_chain(b" leading continuation\r\n" + plain_message(), dns).cv == "none"
    assert verify_chain(b"no colon here\r\n" + chain, dns).cv == "fail"


def test_empty_and_binary_messages(dns: DnsFunc) -> None:
    assert verify_chain(b"", dns).cv == "none"
    assert verify_chain(b"\x00\xff\r\n\r\n", dns).cv == "none"
    assert verify_chain(b"ARC-Seal: \xff\xfe\r\n\r\n", dns).cv == "fail"


SET = [(b"ARC-Seal", b" i=1; cv=none; a=rsa-sha256; d=x.example; s=s; b=AA"),
       (b"ARC-Message-Signature", b" i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A"),
       (b"ARC-Authentication-Results", b" i=1; x.example; dkim=pass")]


@pytest.mark.parametrize(("headers", "problem"), [
    ([(b"From", b" a@b.example")], "none"),
    (SET, ""),
    (SET[:2], "an ARC set is incomplete"),
    ([*SET, SET[0]], "two arc-seal fields for instance 1"),
    ([(n, v.replace(b"i=1", b"i=2")) for n, v in SET], "ARC instances are not 1..N without gaps"),
    ([(n, v.replace(b"i=1", b"i=0")) for n, v in SET], "instance 0 outside 1..50"),
    ([(n, v.replace(b"i=1", b"i=51")) for n, v in SET], "instance 51 outside 1..50"),
    ([(n, v.replace(b"i=1", b"i=99999999")) for n, v in SET],
     "arc-seal without a valid i= tag"),
    ([(b"arc-seal", b" cv=none; d=x.example")], "arc-seal without a valid i= tag"),
    ([(b"ARC-SEAL ", b"\r\n i = 1 ;cv=none"), *SET[1:]], ""),
    ([(n, v.replace(b"i=1", f"i={k}".encode())) for k in range(1, 52) for n, v in SET],
     "more than 50 ARC sets"),
])
def test_structure_problem(headers: list[tuple[bytes, bytes]], problem: str) -> None:
    assert structure_problem(headers) == problem


def test_resinfo() -> None:
    assert resinfo("pass") == "arc=pass"
    assert resinfo("fail", "127.0.0.1") == "arc=fail smtp.remote-ip=127.0.0.1"
    assert resinfo("pass", "2001:db8::1") == 'arc=pass smtp.remote-ip="2001:db8::1"'
    assert resinfo("none", "x; y=(z)") == "arc=none"


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "2001:db8::5"])
def test_resinfo_parses_as_rfc8601(ip: str) -> None:
    # dkimpy's sealer reads our field with authres; a field it cannot parse is not sealed.
    field = authres.AuthenticationResultsHeader.parse(
        f"Authentication-Results: mx.example.test; {resinfo('pass', ip)}")
    [result] = field.results
    assert (result.method, result.result) == ("arc", "pass")
    assert [(p.type, p.name, p.value) for p in result.properties] == [("smtp", "remote-ip", ip)]


def test_fifty_sets_on_a_large_message_cost_one_body_hash(
        fifty: tuple[bytes, DnsFunc]) -> None:
    # Attack regression: dkimpy alone hashes the body once per set (about 25 s here for
    # 5 MB); only the newest ARC-Message-Signature matters (RFC 8617 5.2 step 5).
    message, dns = fifty
    large = message + (b"x" * 76 + b"\r\n") * (5 * 1024 * 1024 // 78)
    started = time.monotonic()
    outcome = verify_chain(large, dns)
    assert time.monotonic() - started < 8
    assert outcome.cv == "fail"           # the appended body broke the newest AMS
    assert "Message-Signature" in outcome.reason
