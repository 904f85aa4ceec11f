"""The check framework and the clamd client's pure parts: `CheckResult` rules, the merge
(reject > tempfail > junk > tag > accept, headers of all kept), the runner, INSTREAM framing,
clamd reply parsing and the result each reply maps to."""

from __future__ import annotations

import asyncio
import struct

import pytest

from appliance.checks.clamav import (
    COMMAND,
    UNAVAILABLE_HEADER,
    ClamdAddress,
    Scan,
    frames,
    parse_address,
    parse_reply,
    scan_result,
)
from appliance.checks.context import MessageContext
from appliance.checks.pipeline import build_checks, merge, run_checks
from appliance.checks.result import CheckResult, Verdict
from appliance.settings import SettingsError, load_settings
from appliance.smtp import replies

CONTEXT = MessageContext("Q1", "192.0.2.1")
ACCEPT = CheckResult("spf", Verdict.ACCEPT, reason="pass", headers=("X-A: 1",))
TAG = CheckResult("clamav", Verdict.TAG, reason="down", headers=(UNAVAILABLE_HEADER,))
JUNK = CheckResult("spam", Verdict.JUNK, reason="score 9", headers=("X-Spam-Status: Yes",))
TEMPFAIL = CheckResult("clamav", Verdict.TEMPFAIL, replies.POLICY_DEFERRED, "timeout")
REJECT = CheckResult("clamav", Verdict.REJECT, replies.POLICY_REJECTED, "virus found: X")


# -- CheckResult and merge -----------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    dict(verdict=Verdict.REJECT, reply=""),
    dict(verdict=Verdict.TEMPFAIL, reply=""),
    dict(verdict=Verdict.ACCEPT, reply=replies.POLICY_REJECTED),
    dict(verdict=Verdict.TAG, reply="", headers=("X-Bad: a\r\nBcc: x",)),
    dict(verdict=Verdict.TAG, reply="", headers=("no colon",)),
])
def test_inconsistent_results_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CheckResult("x", **bad)     # type: ignore[arg-type]


@pytest.mark.parametrize(("results", "winner"), [
    ([], None),
    ([ACCEPT], ACCEPT),
    ([ACCEPT, TAG], TAG),
    ([TAG, JUNK, ACCEPT], JUNK),
    ([JUNK, TEMPFAIL], TEMPFAIL),
    ([TEMPFAIL, REJECT, JUNK], REJECT),
    ([REJECT, TEMPFAIL], REJECT),
])
def test_the_strongest_verdict_decides(results: list[CheckResult],
                                       winner: CheckResult | None) -> None:
    decision = merge(results)
    assert decision.deciding == winner
    assert decision.verdict == (winner.verdict if winner else Verdict.ACCEPT)
    assert decision.reply == (winner.reply if winner else "")
    assert decision.refused == (decision.verdict >= Verdict.TEMPFAIL)


def test_ties_keep_the_first_reason_and_all_headers() -> None:
    other_junk = CheckResult("dmarc", Verdict.JUNK, reason="quarantine", headers=("X-B: 2",))
    decision = merge([ACCEPT, JUNK, other_junk])
    assert decision.deciding is JUNK
    assert decision.header_bytes() == b"X-A: 1\r\nX-Spam-Status: Yes\r\nX-B: 2\r\n"


class FixedCheck:
    def __init__(self, result: CheckResult) -> None:
        self.name = result.check
        self.result = result
        self.calls = 0

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
        self.calls += 1
        return self.result


def test_a_refusal_stops_the_run() -> None:
    first, second, third = FixedCheck(ACCEPT), FixedCheck(REJECT), FixedCheck(TAG)
    decision = asyncio.run(run_checks([first, second, third], b"m", CONTEXT))
    assert decision.deciding is REJECT
    assert (first.calls, second.calls, third.calls) == (1, 1, 0)
    assert decision.elapsed_ms >= 0


def test_no_checks_accept_without_headers() -> None:
    decision = asyncio.run(run_checks([], b"m", CONTEXT))
    assert decision.verdict is Verdict.ACCEPT
    assert decision.header_bytes() == b""


# -- settings ------------------------------------------------------------------------------

def test_settings_build_the_checks_in_order_and_submission_scans_only() -> None:
    on = load_settings(None, environ={})       # everything on by default, in pipeline order
    assert [c.name for c in build_checks(on)] == ["clamav", "auth", "dnsbl", "greylist",
                                                  "spam"]
    assert [c.name for c in build_checks(on, inbound=False)] == ["clamav"]
    off = load_settings(None, environ={f"MAILSTEAD_{name}": "false" for name in (
        "ANTIVIRUS__ENABLED", "CHECKS__AUTHENTICATION", "DNSBL__ENABLED", "GREYLIST__ENABLED",
        "SPAM__ENABLED")})
    assert build_checks(off) == ()


@pytest.mark.parametrize("value", ["clamd.sock", "host", "host:0", "host:99999", ":3310", ""])
def test_bad_clamd_addresses_name_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match=r"antivirus\.clamd_socket"):
        load_settings(None, environ={"MAILSTEAD_ANTIVIRUS__CLAMD_SOCKET": value})


@pytest.mark.parametrize(("text", "address"), [
    ("/run/clamav/clamd.ctl", ClamdAddress(path="/run/clamav/clamd.ctl")),
    ("127.0.0.1:3310", ClamdAddress(host="127.0.0.1", port=3310)),
    ("[::1]:3310", ClamdAddress(host="::1", port=3310)),
    ("clamd.internal:3310", ClamdAddress(host="clamd.internal", port=3310)),
])
def test_clamd_addresses(text: str, address: ClamdAddress) -> None:
    assert parse_address(text) == address


# -- INSTREAM framing and replies ----------------------------------------------------------

def unframe(stream: bytes) -> bytes:
    assert stream.startswith(COMMAND)
    rest, body = stream[len(COMMAND):], b""
    while True:
        (length,) = struct.unpack(">I", rest[:4])
        rest = rest[4:]
        if length == 0:
            assert rest == b""
            return body
        body, rest = body + rest[:length], rest[length:]


@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 1000])
def test_frames_carry_the_message_in_length_prefixed_chunks(size: int) -> None:
    message = bytes(range(256)) * (size // 256 + 1)
    message = message[:size]
    chunks = list(frames(message, chunk_size=100))
    assert len(chunks) == 2 + -(-size // 100)
    assert unframe(b"".join(chunks)) == message


@pytest.mark.parametrize(("raw", "scan"), [
    (b"stream: OK\x00", Scan()),
    (b"stream: Eicar-Test-Signature FOUND\x00", Scan(infected="Eicar-Test-Signature")),
    (b"stream: Win.Trojan.Agent-1 FOUND\x00junk", Scan(infected="Win.Trojan.Agent-1")),
    (b"stream: OK", Scan()),                        # no NUL: the stream ended
    (b"INSTREAM size limit exceeded. ERROR\x00",
     Scan(error="INSTREAM size limit exceeded. ERROR")),
    (b"stream: Can't allocate memory ERROR\x00",
     Scan(error="stream: Can't allocate memory ERROR")),
    (b"", Scan(error="clamd closed the connection without a reply")),
    (b"\x00", Scan(error="clamd closed the connection without a reply")),
    (b"PONG\x00", Scan(error="unexpected clamd reply: PONG")),
    (b"stream:  FOUND\x00", Scan(error="unexpected clamd reply: stream:  FOUND")),
    (b"stream: maybe\x00", Scan(error="unexpected clamd reply: stream: maybe")),
    (b"other: OK\x00", Scan(error="unexpected clamd reply: other: OK")),
])
def test_clamd_replies(raw: bytes, scan: Scan) -> None:
    assert parse_reply(raw) == scan


def test_scan_results_map_to_verdicts() -> None:
    assert scan_result(Scan(), False).verdict is Verdict.ACCEPT
    infected = scan_result(Scan(infected="Bad.Thing"), False)
    assert infected.reply == replies.POLICY_REJECTED
    assert "Bad.Thing" in infected.reason
    assert scan_result(Scan(infected="Bad.Thing"), True).verdict is Verdict.REJECT  # never open
    down = scan_result(Scan(error="gone"), False)
    assert down.verdict is Verdict.TEMPFAIL
    assert down.reply == replies.POLICY_DEFERRED
    tagged = scan_result(Scan(error="gone"), True)
    assert tagged.verdict is Verdict.TAG
    assert tagged.headers == (UNAVAILABLE_HEADER,)
    assert "gone" in tagged.reason


# -- Authentication-Results (RFC 8601) ------------------------------------------------------

def test_one_authentication_results_field_leads_the_headers() -> None:
    spf = CheckResult("auth", Verdict.ACCEPT, auth_results=("spf=pass smtp.mailfrom=a.test",
                                                            "dkim=pass header.d=a.test"))
    tag = CheckResult("spam", Verdict.TAG, headers=("X-Spam-Status: No",))
    decision = merge([spf, tag])
    assert decision.header_bytes("mx.example.test") == (
        b"Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=a.test;\r\n"
        b"\tdkim=pass header.d=a.test\r\nX-Spam-Status: No\r\n")
    assert merge([tag]).header_bytes("mx.example.test").startswith(
        b"Authentication-Results: mx.example.test; none\r\n")
    assert decision.header_bytes() == b"X-Spam-Status: No\r\n"    # submission: none at all


def test_a_resinfo_is_one_line() -> None:
    with pytest.raises(ValueError):
        CheckResult("auth", Verdict.ACCEPT, auth_results=("spf=pass\r\nX-Evil: 1",))


def test_after_decision_hears_the_merged_verdict_and_cannot_break_the_run() -> None:
    heard: list[Verdict] = []

    def broken(_verdict: Verdict) -> None:
        raise RuntimeError("a broken listener")

    class Noting(FixedCheck):
        async def check(self, message: bytes, context: MessageContext) -> CheckResult:
            context.after_decision.append(heard.append)
            context.after_decision.append(broken)
            return await super().check(message, context)

    context = MessageContext("Q2", "192.0.2.1")
    decision = asyncio.run(run_checks([Noting(ACCEPT), FixedCheck(TAG)], b"m", context))
    assert heard == [decision.verdict] == [Verdict.TAG]
