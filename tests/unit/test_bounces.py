"""RFC 3464 reports parse back with the email package and carry the right fields."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from appliance.outbound.bounces import (
    ReportContext,
    ReportedRecipient,
    build_report,
    header_block,
    is_report,
    mta_name,
    should_report,
    status_code,
)
from appliance.outbound.scheduler import Notice

ORIGINAL = (b"From: Alice <alice@example.test>\r\nTo: x@remote.test\r\n"
            b"Subject: the original\r\nMessage-ID: <orig@example.test>\r\n\r\n"
            b"the body\r\n")


def ctx(ret: str | None = None, envid: str | None = None, sender: str = "alice@example.test",
        limit: int = 10_000) -> ReportContext:
    return ReportContext("mx.example.test", "QID1", sender, envid, ret, 1_700_000_000.0,
                         1_700_000_600.0, limit)


FAILED = ReportedRecipient("x@remote.test", "rfc822;list@example.test",
                           "550 5.1.1 <x@remote.test>: no such user", "mx.remote.test",
                           1_700_000_500.0)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> list[Any]:
    return list(message.iter_parts())


def status_blocks(message: EmailMessage) -> list[Any]:
    payload = parts(message)[1].get_payload()
    assert isinstance(payload, list)
    return payload


def test_failure_report_structure_and_fields() -> None:
    raw = build_report(ctx(envid="ENV-42"), Notice.FAILED, [FAILED], ORIGINAL, token="t")
    assert b"\n" not in raw.replace(b"\r\n", b"")         # CRLF only
    message = parse(raw)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert message["To"] == "alice@example.test"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Message-ID"] == "<QID1.t.dsn@mx.example.test>"
    assert [p.get_content_type() for p in parts(message)] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    human = parts(message)[0].get_content()
    assert "550 5.1.1" in human
    assert "x@remote.test" in human
    per_message, per_recipient = status_blocks(message)
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert per_recipient["Final-Recipient"] == "rfc822; x@remote.test"
    assert per_recipient["Original-Recipient"] == "rfc822; list@example.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 <x@remote.test>: no such user"
    assert per_recipient["Last-Attempt-Date"] is not None


@pytest.mark.parametrize(("ret", "limit", "kind"), [
    (None, 10_000, "text/rfc822-headers"),
    ("HDRS", 10_000, "text/rfc822-headers"),
    ("FULL", 10_000, "message/rfc822"),
    ("FULL", 50, "text/rfc822-headers"),        # too large to return whole
])
def test_returned_content_follows_ret(ret: str | None, limit: int, kind: str) -> None:
    message = parse(build_report(ctx(ret=ret, limit=limit), Notice.FAILED, [FAILED], ORIGINAL))
    returned = parts(message)[2]
    assert returned.get_content_type() == kind
    if kind == "message/rfc822":
        inner = returned.get_payload()[0]
        assert inner["Subject"] == "the original"
        assert inner.get_payload() == "the body\r\n"
    else:
        text = returned.get_payload(decode=True)
        assert b"Subject: the original" in text
        assert b"the body" not in text
    if limit == 50:
        assert "only its headers are returned" in parts(message)[0].get_content()


def test_full_is_only_for_failures() -> None:
    delayed = ReportedRecipient("x@remote.test", None, "451 4.4.1 no answer", None,
                                1_700_000_500.0, 1_700_432_000.0)
    message = parse(build_report(ctx(ret="FULL"), Notice.DELAYED, [delayed], ORIGINAL))
    assert message["Subject"] == "Delayed Mail (still being retried)"
    assert parts(message)[2].get_content_type() == "text/rfc822-headers"
    block = status_blocks(message)[1]
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.4.1"
    assert block["Will-Retry-Until"] is not None
    assert block["Original-Recipient"] is None
    assert block["Remote-MTA"] is None


@pytest.mark.parametrize(("action", "expected"), [(Notice.DELIVERED, "delivered"),
                                                  (Notice.RELAYED, "relayed")])
def test_success_reports(action: Notice, expected: str) -> None:
    ok = ReportedRecipient("x@remote.test", None, "250 2.0.0 Ok: queued", "mx.remote.test")
    message = parse(build_report(ctx(), action, [ok], ORIGINAL))
    assert message["Subject"] == "Successful Mail Delivery Report"
    block = status_blocks(message)[1]
    assert (block["Action"], block["Status"]) == (expected, "2.0.0")


def test_several_recipients_get_one_block_each() -> None:
    other = ReportedRecipient("y@remote.test", None, "5.3.0 The queued copy was lost")
    message = parse(build_report(ctx(), Notice.FAILED, [FAILED, other], ORIGINAL))
    blocks = status_blocks(message)
    assert [b["Final-Recipient"] for b in blocks[1:]] == [
        "rfc822; x@remote.test", "rfc822; y@remote.test"]
    assert blocks[2]["Status"] == "5.3.0"
    assert blocks[2]["Diagnostic-Code"] is None


def test_no_reports_to_the_null_sender_or_about_reports() -> None:
    assert should_report(ctx(), ORIGINAL)
    assert not should_report(ctx(sender=""), ORIGINAL)
    report = build_report(ctx(), Notice.FAILED, [FAILED], ORIGINAL)
    assert is_report(report)
    assert not should_report(ctx(), report)
    assert not is_report(ORIGINAL)


def test_boundary_never_occurs_in_the_returned_message() -> None:
    first = build_report(ctx(ret="FULL"), Notice.FAILED, [FAILED], ORIGINAL, token="t")
    sneaky = ORIGINAL + b"--QID1.t/mx.example.test\r\n"
    message = parse(build_report(ctx(ret="FULL"), Notice.FAILED, [FAILED], sneaky, token="t"))
    assert len(parts(message)) == 3
    assert first != sneaky


def test_diagnostics_are_header_safe() -> None:
    evil = ReportedRecipient("x@remote.test", None, "550 5.7.1 bad\r\nX-Injected: yes é")
    message = parse(build_report(ctx(), Notice.FAILED, [evil], ORIGINAL))
    block = status_blocks(message)[1]
    assert block["X-Injected"] is None
    assert "?" in block["Diagnostic-Code"]


def test_8bit_original_is_marked() -> None:
    original = "Subject: héllo\r\n\r\nbody\r\n".encode()
    raw = build_report(ctx(), Notice.FAILED, [FAILED], original)
    assert parts(parse(raw))[2]["Content-Transfer-Encoding"] == "8bit"


def test_header_block_and_status_code_edges() -> None:
    assert header_block(b"A: 1\nB: 2\n\nbody") == b"A: 1\nB: 2\n"
    assert header_block(b"\r\nbody only") == b""
    assert header_block(b"A: 1\r\n") == b"A: 1\r\n"
    assert status_code("421 closing", Notice.FAILED) == "4.0.0"
    assert status_code("no code", Notice.FAILED) == "5.0.0"
    assert status_code("no code", Notice.DELAYED) == "4.0.0"
    assert status_code("5.4.7 expired; last reply: 451 4.4.1 x", Notice.FAILED) == "5.4.7"


@pytest.mark.parametrize(("remote_host", "expected"), [
    ("mx.remote.test[192.0.2.1]", "mx.remote.test"),      # as the transport reports it
    ("mx.v6.test[::1]", "mx.v6.test"),
    ("mx.remote.test", "mx.remote.test"),
])
def test_remote_mta_is_the_host_name_alone(remote_host: str, expected: str) -> None:
    """RFC 3464 2.3.5: `Remote-MTA: dns; name`; the address stays in the human part."""
    recipient = ReportedRecipient("x@remote.test", None, "550 5.1.1 no", remote_host)
    message = parse(build_report(ctx(), Notice.FAILED, [recipient], ORIGINAL, token="t"))
    assert mta_name(remote_host) == expected
    assert status_blocks(message)[1]["Remote-MTA"] == f"dns; {expected}"
    assert f"(reported by {remote_host})" in parts(message)[0].get_content()


UTF8_ORIGINAL = ("From: Jörg <jörg@bücher.example>\r\nTo: ñandú@remote.test\r\n"
                 "Subject: Grüße\r\n\r\nder Text\r\n").encode()


@pytest.mark.parametrize(("ret", "kind"), [(None, "message/global-headers"),
                                           ("FULL", "message/global")])
def test_utf8_messages_and_addresses_get_the_global_types(ret: str | None, kind: str) -> None:
    """RFC 6533: UTF-8 addresses go in message/global-delivery-status (utf-8 address
    type), a returned SMTPUTF8 message as message/global or message/global-headers."""
    failed = ReportedRecipient("ñandú@remote.test", "utf-8;ñandú@remote.test",
                               "550 5.1.1 no such user", "mx.remote.test", 1_700_000_500.0)
    raw = build_report(ctx(ret=ret, sender="jörg@bücher.example"), Notice.FAILED, [failed],
                       UTF8_ORIGINAL)
    text = raw.decode("utf-8")
    assert "Content-Type: message/global-delivery-status\r\n" in text
    assert "Final-Recipient: utf-8; ñandú@remote.test\r\n" in text
    assert "Original-Recipient: utf-8; ñandú@remote.test\r\n" in text
    assert f"Content-Type: {kind}\r\n" in text
    assert "Subject: Grüße\r\n" in text
    assert ("der Text" in text) == (ret == "FULL")


def test_ascii_reports_keep_the_classic_types() -> None:
    raw = build_report(ctx(ret="FULL"), Notice.FAILED, [FAILED], ORIGINAL)
    assert b"message/global" not in raw
