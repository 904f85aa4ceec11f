"""Removing `Authentication-Results` fields that claim our authserv-id (RFC 8601 section 5)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.checks.auth_results import claimed_authserv_id, remove_forged, results_header

OURS = "mx.example.test"


def test_forged_fields_with_our_id_go_others_stay() -> None:
    message = (b"Received: from x\r\n"
               b"Authentication-Results: MX.Example.Test; spf=pass\r\n"
               b"Authentication-Results: (comment (nested)) mx.example.test;\r\n"
               b"\tdkim=pass header.d=bank.test\r\n"
               b"authentication-results: \"mx.example.test\" 1; dmarc=pass\r\n"
               b"Authentication-Results: relay.other.test; spf=fail\r\n"
               b"Subject: hi\r\n\r\n"
               b"Authentication-Results: mx.example.test; in the body stays\r\n")
    cleaned, removed = remove_forged(message, OURS)
    assert removed == 3
    assert cleaned == (b"Received: from x\r\n"
                       b"Authentication-Results: relay.other.test; spf=fail\r\n"
                       b"Subject: hi\r\n\r\n"
                       b"Authentication-Results: mx.example.test; in the body stays\r\n")


def test_spam_fields_from_outside_go() -> None:
    message = (b"X-Spam-Status: No, score=-5\r\nX-Spam-Score: -5\r\nx-spam-flag: NO\r\n"
               b"X-Spam-Report: all clean\r\n\tfolded\r\nX-Spamish: stays\r\n"
               b"Subject: hi\r\n\r\nX-Spam-Status: in the body stays\r\n")
    assert remove_forged(message, OURS) == (
        b"X-Spamish: stays\r\nSubject: hi\r\n\r\nX-Spam-Status: in the body stays\r\n", 4)


def test_lf_only_and_headerless_messages() -> None:
    message = b"Authentication-Results: mx.example.test; spf=pass\nSubject: x\n\nbody\n"
    assert remove_forged(message, OURS) == (b"Subject: x\n\nbody\n", 1)
    assert remove_forged(b"\r\nbody", OURS) == (b"\r\nbody", 0)
    assert remove_forged(b"", OURS) == (b"", 0)


def test_claimed_id_parsing() -> None:
    assert claimed_authserv_id(b" mx.example.test; none") == "mx.example.test"
    assert claimed_authserv_id(b"(c) Mx.Example.Test 1; spf=pass") == "mx.example.test"
    assert claimed_authserv_id(b"  ") == ""


def test_results_header_shape() -> None:
    assert results_header(OURS, []) == "Authentication-Results: mx.example.test; none"
    assert results_header(OURS, ["spf=pass", "dkim=none"]) == (
        "Authentication-Results: mx.example.test;\r\n\tspf=pass;\r\n\tdkim=none")


@given(st.binary(max_size=400))
def test_fuzz_only_removes_whole_fields(message: bytes) -> None:
    cleaned, removed = remove_forged(message, OURS)
    assert len(cleaned) <= len(message)
    assert (removed == 0) == (cleaned == message)
    end = message.find(b"\r\n\r\n")
    if end >= 0 and b"\n\n" not in message[:end]:      # the body is never touched
        assert cleaned.endswith(message[end + 2:])
