"""Fuzz the spam tokenizer: any bytes, and MIME-looking assemblies of hostile pieces
(broken encodings, unknown charsets, deep nesting, huge headers), give a token set within
its bound and never an exception; the spam decision for any score parts is well-formed."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.checks.result import CheckResult, Verdict
from appliance.checks.spam import SpamPolicy, decide
from appliance.spam.tokenizer import TokenLimits, tokenize

LIMITS = TokenLimits(max_parse=64 * 1024, max_text=4096, max_tokens=200, max_headers=20)

PIECES = st.sampled_from([
    b"Subject: ", b"From: ", b"=?utf-8?b?", b"?=", b"=?x-unknown?q?a=ZZ?=", b"\r\n", b"\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"--b--\r\n",
    b"Content-Type: text/plain; charset=x-nope\r\n", b"Content-Type: text/html\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%ff%fe.exe\r\n", b"=\r\n", b"=4",
    b"<a href='http://", b"x.example.org", b"'>", b"<", b">", b"\xff\xfe", b"\x00",
    b"https://", b"a@b.example", b"!!!", b"aaaaaaaaaaaaaaaaaaaaaaaaaaaa", b" ", b":",
    b"Reply-To: <<@>>, \"\r\n"])
MESSAGES = st.lists(PIECES, max_size=60).map(b"".join) | st.binary(max_size=2000)


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
@example(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n"
         b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" * 400)
@example(b"Subject: " + b"word " * 20_000 + b"\r\n\r\n")
@example(b"From: " + b"<a@b>," * 5000 + b"\r\n\r\n")
def test_any_bytes_give_bounded_tokens(raw: bytes) -> None:
    found = tokenize(raw, LIMITS)
    assert len(found) <= LIMITS.max_tokens
    assert all(isinstance(t, str) and 0 < len(t) <= 64 for t in found)
    assert tokenize(raw, LIMITS) == found             # deterministic: unlearning needs it


RULES = st.text(max_size=60)
POINTS = st.floats(min_value=-100, max_value=100, allow_nan=False)


@given(st.lists(st.tuples(RULES, POINTS), max_size=60))
@example([("R" * 60, -12.345678)] * 60)
def test_any_score_parts_give_a_valid_result(parts: list[tuple[str, float]]) -> None:
    result = decide(parts, None, SpamPolicy())
    assert isinstance(result, CheckResult)                # its own checks on headers pass
    score = float(result.headers[0].split(": ")[1])
    assert result.verdict is (Verdict.REJECT if score >= 15 else
                              Verdict.JUNK if score >= 5 else Verdict.ACCEPT)
    assert all(len(h) < 998 for h in result.headers)       # RFC 5322 2.1.1
