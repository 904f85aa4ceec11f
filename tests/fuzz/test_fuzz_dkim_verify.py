"""Fuzz DKIM verification (appliance/checks/dkim_verify.py): any DKIM-Signature field value
in front of a correctly signed message gives a defined result for it, never an exception,
the good signature still passes, and every resinfo fits an Authentication-Results field."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.checks.auth_dns import CachedTxt, DnsTempError, TxtLookup, TxtRecords
from appliance.checks.dkim_verify import DkimVerifier, verify_all
from appliance.checks.result import CheckResult, Verdict
from harness.arc_chain import Signer, plain_message

SIGNER = Signer("origin.example", "sel")
SIGNED = SIGNER.dkim_sign(plain_message())
KEYS: dict[str, TxtRecords | DnsTempError] = {
    "sel._domainkey.origin.example": (SIGNER.key.record,),
    "bad._domainkey.origin.example": (b"v=DKIM1; p=AAAA",),
    "down._domainkey.origin.example": DnsTempError("SERVFAIL")}
# dkim_verify's parse step (no DNS: the keys come from KEYS); 10 signatures at most.
PREPARE = DkimVerifier(TxtLookup("127.0.0.1:9", 1.0), 10)._prepare
RESULTS = {"pass", "fail", "neutral", "policy", "temperror", "permerror"}
TAGS = st.sampled_from([
    b"v=1", b"v=2", b"a=rsa-sha256", b"a=ed25519-sha256", b"a=x", b"d=origin.example",
    b"d=", b"d=\xff", b"s=sel", b"s=bad", b"s=down", b"s=none", b"h=from:to", b"h=",
    b"bh=AAAA", b"bh=!!", b"b=AAAA", b"b=", b"c=relaxed/relaxed", b"c=x/y", b"l=5",
    b"l=-1", b"x=1", b"t=99999999999", b"i=@origin.example", b"i=@evil.test", b"q=dns/txt",
    b"q=x", b"=", b";", b"\r\n ", b"\x00", b"z=From:a|To:b"])
VALUES = st.lists(TAGS, max_size=14).map(b"; ".join) | st.binary(max_size=300)


@settings(max_examples=300, deadline=None)
@given(VALUES)
@example(b"v=1; a=rsa-sha256; d=origin.example; s=sel; h=from; bh=AAAA; b=AAAA")
@example(b"v=1; a=rsa-sha256; d=origin.example; s=down; h=from; bh=AAAA; b=AAAA")
def test_any_signature_field_gets_a_defined_result(value: bytes) -> None:
    folded = value.replace(b"\r", b"").replace(b"\n", b"\r\n ")     # stays one field
    message = b"DKIM-Signature: " + folded + b"\r\n" + SIGNED
    parsed, sigs, skipped = PREPARE(message)      # the check's own parse, not a copy of it
    if parsed is None:      # the check reports such a header block as one permerror
        return
    assert (len(sigs), skipped) == (2, 0)
    results = verify_all(parsed, sigs, CachedTxt(KEYS))
    assert {r.result for r in results} <= RESULTS
    assert results[-1].result == "pass"
    CheckResult("auth", Verdict.ACCEPT, auth_results=tuple(r.resinfo for r in results))
