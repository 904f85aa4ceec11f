"""DKIM verification (appliance/checks/dkim_verify.py) against a real Knot DNS serving the
keys: RSA-2048 keys in split TXT strings and Ed25519 keys verify, changed bodies and
headers fail, missing and broken keys are permerror, a server that refuses or never
answers gives temperror in bounded time, and hostile signature fields (malformed: neutral; 200
of them) give defined results without exceptions."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import time
from collections.abc import Iterator

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.checks.auth_dns import DnsTempError, TxtLookup
from appliance.checks.dkim_verify import DkimResult, DkimVerifier
from harness.arc_chain import Key, Signer, txt_zone_line
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(120)
ORIGIN = "example.test"


class EdSigner:
    """An Ed25519 (RFC 8463) signer: dkimpy wants the base64 seed, DNS the raw public key."""

    def __init__(self, domain: str, selector: str) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        self.domain, self.selector = domain, selector
        self.private = base64.b64encode(seed)
        self.record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)

    def dkim_sign(self, message: bytes) -> bytes:
        field: bytes = dkim.sign(message, self.selector.encode(), self.domain.encode(),
                                 self.private, signature_algorithm=b"ed25519-sha256",
                                 include_headers=[b"from", b"to", b"subject"])
        return field + message


RSA = Signer(ORIGIN, "big", Key.generate(2048))
SUB = Signer(f"mail.{ORIGIN}", "s1")
ED = EdSigner(ORIGIN, "ed")
NO_KEY = Signer(ORIGIN, "missing")                 # signs, but no record is published
ELSEWHERE = Signer("unserved.test", "s1")          # Knot refuses: a server failure


def message(subject: str = "Hello", body: bytes = b"Hello there.\r\n") -> bytes:
    return (b"From: Alice <alice@example.test>\r\nTo: bob@example.net\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <v1@example.test>\r\n"
            b"\r\n" + body)


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    lines = [txt_zone_line(s.record_name.removesuffix("." + ORIGIN), s.key.record)
             for s in (RSA, SUB)]
    lines += [f'ed._domainkey TXT "{ED.record.decode()}"',
              'broken._domainkey TXT "v=DKIM1; k=rsa; p=bm90IGEga2V5"',
              'weird._domainkey TXT "v=DKIM1; k=gost; p=AAAA"']
    server = KnotDns(tmp_path_factory.mktemp("dkim-knot"), {ORIGIN: zone_text(ORIGIN, lines)})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def verify(knot_spec: str, data: bytes, max_signatures: int = 10,
           timeout: float = 3.0) -> tuple[DkimResult, ...]:
    verifier = DkimVerifier(TxtLookup(knot_spec, timeout), max_signatures)
    return asyncio.run(verifier.verify(data))


def test_rsa_2048_key_in_split_txt_strings_verifies(knot: KnotDns) -> None:
    signed = RSA.dkim_sign(message())
    (result,) = verify(knot.resolver_spec, signed)
    b = re.search(rb"\bb=([^;]+)", signed.split(b"\r\n\r\n")[0].replace(b"\r\n ", b""))
    assert b is not None
    assert (result.result, result.domain, result.selector) == ("pass", ORIGIN, "big")
    assert result.b == re.sub(rb"\s", b"", b.group(1)).decode()[:8]
    assert result.resinfo.startswith(f"dkim=pass header.d={ORIGIN} header.s=big header.b=")


def test_ed25519_and_rsa_signatures_both_verify(knot: KnotDns) -> None:
    signed = ED.dkim_sign(SUB.dkim_sign(message()))
    results = verify(knot.resolver_spec, signed)
    assert [(r.result, r.domain, r.selector) for r in results] == [
        ("pass", ORIGIN, "ed"), ("pass", f"mail.{ORIGIN}", "s1")]


def test_a_body_changed_in_transit_fails(knot: KnotDns) -> None:
    signed = RSA.dkim_sign(message()).replace(b"Hello there.", b"Hello thine.")
    (result,) = verify(knot.resolver_spec, signed)
    assert result.result == "fail"
    assert "body hash" in result.reason
    assert result.resinfo.startswith("dkim=fail (body hash mismatch) header.d=example.test")


def test_a_changed_signed_header_fails(knot: KnotDns) -> None:
    signed = ED.dkim_sign(message()).replace(b"Subject: Hello", b"Subject: Hullo")
    (result,) = verify(knot.resolver_spec, signed)
    assert (result.result, result.reason) == ("fail", "signature did not verify")


@pytest.mark.parametrize(("selector", "reason"), [
    ("missing", "no key for signature"), ("broken", "unusable key"),
    ("weird", "unusable key")])
def test_missing_and_broken_keys_are_permerror(knot: KnotDns, selector: str,
                                               reason: str) -> None:
    signer = Signer(ORIGIN, selector, NO_KEY.key)
    (result,) = verify(knot.resolver_spec, signer.dkim_sign(message()))
    assert result.result == "permerror"
    assert result.reason.startswith(reason)


def test_a_refusing_server_is_temperror(knot: KnotDns) -> None:
    (result,) = verify(knot.resolver_spec, ELSEWHERE.dkim_sign(message()))
    assert result.result == "temperror"
    assert result.resinfo.startswith("dkim=temperror (key lookup failed")


def test_a_server_that_never_answers_is_temperror_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))        # receives queries, answers none
        spec = f"127.0.0.1:{hole.getsockname()[1]}"
        started = time.monotonic()
        results = verify(spec, RSA.dkim_sign(SUB.dkim_sign(message())), timeout=1.0)
        elapsed = time.monotonic() - started
    assert [r.result for r in results] == ["temperror", "temperror"]
    assert elapsed < 2.5                    # both lookups ran at once, each within 1 s


def test_unsigned_message_is_none(knot: KnotDns) -> None:
    assert verify(knot.resolver_spec, message()) == (DkimResult("none"),)
    assert DkimResult("none").resinfo == "dkim=none"


MALFORMED = [
    b"DKIM-Signature: \r\n",
    b"DKIM-Signature: garbage without tags\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; s=big; h=from; bh=AAAA; b=AAAA\r\n",      # no d=
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; h=from; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=exa mple..test; s=big; h=from; bh=A; b=A\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha512; d=example.test; s=big; h=from; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=2; a=rsa-sha256; d=example.test; s=big; h=from; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=big; h=from; bh=!!; b=!!\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=big; h=from; bh=AAAA; b=AAAA;"
    b" x=1000; t=900\r\n",                                                            # expired
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=big; h=from; bh=AAAA; b=AAAA;"
    b" i=user@evil.test\r\n",                                                 # i= outside d=
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=big; h=from; bh=AAAA; b=AAAA;"
    b" l=notanumber; c=bogus/bogus\r\n",
    b"DKIM-Signature: v=1; d=example.test; d=other.test; s=big\r\n",        # duplicate tag
    b"DKIM-Signature: v=1; a=rsa-sha256; d=\xc3\xa9xample.test; s=\xff; h=from; bh=A; b=A\r\n",
    b"DKIM-Signature: " + b"a=" * 3000 + b"\r\n",
]


@pytest.mark.parametrize("field", MALFORMED)
def test_malformed_signature_fields_get_a_defined_result(knot: KnotDns, field: bytes) -> None:
    good = RSA.dkim_sign(message())
    results = verify(knot.resolver_spec, field + good)
    assert results[0].result == "neutral", results[0]
    assert results[1].result == "pass"        # the good signature is still found
    for r in results:
        assert not set("\r\n;") & set(r.resinfo)


def test_a_header_block_dkimpy_cannot_parse_is_permerror(knot: KnotDns) -> None:
    broken = b" leading continuation\r\n" + RSA.dkim_sign(message())
    assert verify(knot.resolver_spec, broken) == (
        DkimResult("permerror", reason="message header unparseable"),)


def test_two_hundred_signatures_verify_ten_and_report_the_rest_once(knot: KnotDns) -> None:
    good = RSA.dkim_sign(message())
    field = good.split(b"\r\nFrom:")[0] + b"\r\n"          # the signature field, folded
    flood = field * 199 + good
    started = time.monotonic()
    results = verify(knot.resolver_spec, flood)
    elapsed = time.monotonic() - started
    assert [r.result for r in results] == ["pass"] * 10 + ["policy"]
    assert results[-1].resinfo == \
        "dkim=policy (190 more signatures not verified, limit 10)"
    assert elapsed < 10


def test_the_signature_limit_is_a_setting(knot: KnotDns) -> None:
    signed = RSA.dkim_sign(ED.dkim_sign(SUB.dkim_sign(message())))
    results = verify(knot.resolver_spec, signed, max_signatures=1)
    assert [r.result for r in results] == ["pass", "policy"]


def test_lf_line_ends_verify_too(knot: KnotDns) -> None:
    signed = RSA.dkim_sign(message()).replace(b"\r\n", b"\n")
    assert [r.result for r in verify(knot.resolver_spec, signed)] == ["pass"]


def test_the_blocking_lookup_joins_split_strings(knot: KnotDns) -> None:
    lookup = TxtLookup(knot.resolver_spec, 2.0).blocking()
    assert lookup(f"big._domainkey.{ORIGIN}.".encode()) == RSA.key.record
    assert lookup(b"nothing.example.test.") is None



def test_the_blocking_lookup_times_out_and_keeps_to_its_budget() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        lookup = TxtLookup(f"127.0.0.1:{hole.getsockname()[1]}", 0.5).blocking(budget=0.8)
        started = time.monotonic()
        with pytest.raises(DnsTempError):
            lookup(b"s1._domainkey.example.test.")
        with pytest.raises(DnsTempError):       # the rest of the budget, then no more
            lookup(b"s2._domainkey.example.test.")
        with pytest.raises(DnsTempError, match="lookup time used up"):
            lookup(b"s3._domainkey.example.test.")
        assert time.monotonic() - started < 1.5
