"""DKIM verification's pure parts (appliance/checks/dkim_verify.py): reading signature
fields, the RFC 8601 resinfo and its quoting, and the result mapping with keys answered from
a table (`CachedTxt`, the same object the check hands dkimpy after its DNS lookups).
tests/integration/test_auth_checks_dkim.py runs the same against Knot."""

from __future__ import annotations

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from appliance.checks.auth_dns import CachedTxt, DnsTempError, TxtRecords
from appliance.checks.dkim_verify import (
    DkimResult,
    comment,
    is_dns_name,
    pvalue,
    read_signature,
    signature_values,
    verify_all,
)
from harness.arc_chain import Signer, plain_message

SIGNER = Signer("origin.example", "sel")


def run(message: bytes, answers: dict[str, TxtRecords | DnsTempError]) -> list[DkimResult]:
    parsed = dkim.DKIM(message)
    values = signature_values(parsed.headers)
    sigs = [read_signature(i, v) for i, v in enumerate(values)]
    return verify_all(parsed, sigs, CachedTxt(answers))


KEYS: dict[str, TxtRecords | DnsTempError] = {
    "sel._domainkey.origin.example": (SIGNER.key.record,)}


def test_pass_with_the_key_from_the_table() -> None:
    (result,) = run(SIGNER.dkim_sign(plain_message()), KEYS)
    assert (result.result, result.domain, result.selector, result.reason) == \
        ("pass", "origin.example", "sel", "")
    assert len(result.b) == 8


def test_fail_when_the_body_changed() -> None:
    signed = SIGNER.dkim_sign(plain_message()).replace(b"Hello list.", b"Bye list.")
    assert run(signed, KEYS)[0].result == "fail"


def test_a_key_not_looked_up_or_failing_is_temperror() -> None:
    signed = SIGNER.dkim_sign(plain_message())
    assert run(signed, {})[0].result == "temperror"
    failing: dict[str, TxtRecords | DnsTempError] = {
        "sel._domainkey.origin.example": DnsTempError("SERVFAIL")}
    (result,) = run(signed, failing)
    assert (result.result, result.reason) == ("temperror", "key lookup failed: SERVFAIL")


def test_no_record_is_permerror_no_key() -> None:
    (result,) = run(SIGNER.dkim_sign(plain_message()),
                    {"sel._domainkey.origin.example": ()})
    assert (result.result, result.reason) == ("permerror", "no key for signature")


def test_a_revoked_key_is_permerror() -> None:
    """RFC 6376 3.6.1: an empty p= means the key was revoked."""
    (result,) = run(SIGNER.dkim_sign(plain_message()),
                    {"sel._domainkey.origin.example": (b"v=DKIM1; k=rsa; p=",)})
    assert result.result == "permerror"


def test_the_first_of_several_key_records_is_used() -> None:
    answers: dict[str, TxtRecords | DnsTempError] = {
        "sel._domainkey.origin.example": (SIGNER.key.record, b"v=DKIM1; p=garbage")}
    assert run(SIGNER.dkim_sign(plain_message()), answers)[0].result == "pass"


@pytest.mark.parametrize(("value", "expected"), [
    (b"v=1; d=Example.ORG.; s=Sel; b=abc def/+ghijk", ("example.org", "sel", "abcdef/+", "")),
    (b"v=1; s=sel", ("", "", "", "missing or invalid d=")),
    (b"v=1; d=example.org", ("example.org", "", "", "missing or invalid s=")),
    (b"v=1; d=-x-.example; s=sel", ("", "", "", "missing or invalid d=")),
    (b"v=1; d=example.org; s=a b", ("example.org", "", "", "missing or invalid s=")),
])
def test_read_signature(value: bytes, expected: tuple[str, str, str, str]) -> None:
    sig = read_signature(0, value)
    assert (sig.domain, sig.selector, sig.b, sig.problem) == expected


def test_read_signature_reports_a_malformed_tag_list() -> None:
    assert read_signature(0, b"d=x; d=y").problem.startswith("malformed tag list")
    assert read_signature(0, b"no tags at all").problem.startswith("malformed tag list")


@pytest.mark.parametrize(("text", "ok"), [
    ("example.org", True), ("_dmarc.example.org", True), ("a", True), ("x" * 63, True),
    ("x" * 64, False), ("a..b", False), ("", False), ("-a.b", False), ("a b", False),
    ("é.example", False), (".".join(["a" * 60] * 5), False)])
def test_is_dns_name(text: str, ok: bool) -> None:
    assert is_dns_name(text) is ok


def test_resinfo_quotes_what_is_no_token() -> None:
    result = DkimResult("pass", "example.org", "sel", "ab/c+d=e")
    assert result.resinfo == 'dkim=pass header.d=example.org header.s=sel header.b="ab/c+d=e"'
    assert pvalue('a"b\\c;d\r\n') == '"abcd"'
    assert pvalue("plain-token") == "plain-token"


def test_comments_cannot_break_the_field() -> None:
    assert comment("bad (nested) ; key\r\n\x00text") == "(bad nested key text)"
    assert len(comment("x" * 1000)) == 122
    failing = DkimResult("fail", "example.org", reason="body; hash (mismatch)")
    assert failing.resinfo == "dkim=fail (body hash mismatch) header.d=example.org"
