"""Pure SMTP policy: recipient decisions and the RFC 5321 4.4 trace headers."""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
from pathlib import Path

import pytest

from appliance.smtp import replies
from appliance.smtp.policy import Trace, recipient_reply, to_maildir_lines, trace_headers
from appliance.storage.interfaces import Mailbox, RecipientStatus, Resolution

BASE = Trace(sender="alice@example.org", helo="mx.client.test", client_ip="192.0.2.1",
             hostname="mx.example.test", protocol="ESMTPS", queue_id="Q1",
             recipient="bob@example.test", timestamp=1_700_000_000.0)
BOX = Mailbox(1, "bob@example.test", Path("mail/example.test/bob"))


@pytest.mark.parametrize(("resolution", "expected"), [
    (Resolution(RecipientStatus.NOT_LOCAL), replies.RELAY_DENIED),
    (Resolution(RecipientStatus.UNKNOWN), replies.UNKNOWN_USER),
    (Resolution(RecipientStatus.DISABLED), replies.MAILBOX_DISABLED),
    (Resolution(RecipientStatus.DELIVER, (BOX,)), None),
    (Resolution(RecipientStatus.DELIVER, (BOX,), ("x@remote.test",)), None),   # queued
    (Resolution(RecipientStatus.DELIVER, (), ("x@remote.test",)), None),
])
def test_recipient_reply(resolution: Resolution, expected: str | None) -> None:
    assert recipient_reply(resolution) == expected


def test_trace_headers_exact_form() -> None:
    assert trace_headers(BASE) == (
        b"Return-Path: <alice@example.org>\n"
        b"Received: from mx.client.test ([192.0.2.1])\n"
        b"\tby mx.example.test (Mailstead) with ESMTPS id Q1\n"
        b"\tfor <bob@example.test>;\n"
        b"\tTue, 14 Nov 2023 22:13:20 +0000\n")


def test_trace_headers_parse_as_headers() -> None:
    block = trace_headers(BASE) + b"\nbody\n"
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(block)
    assert message["Return-Path"] == "<alice@example.org>"
    received = str(message["Received"])
    assert received.startswith("from mx.client.test ([192.0.2.1])")
    assert received.rstrip().endswith("Tue, 14 Nov 2023 22:13:20 +0000")


def test_null_sender_and_several_recipients() -> None:
    block = trace_headers(dataclasses.replace(BASE, sender="", recipient=None)).decode()
    assert block.startswith("Return-Path: <>\n")
    assert "for <" not in block
    assert "with ESMTPS id Q1;\n\tTue, 14 Nov 2023" in block


def test_ipv6_client_uses_the_address_literal_form() -> None:
    # RFC 5321 4.1.3: IPv6-address-literal = "IPv6:" IPv6-addr
    block = trace_headers(dataclasses.replace(BASE, client_ip="2001:db8::1")).decode()
    assert "Received: from mx.client.test ([IPv6:2001:db8::1])\n" in block


@pytest.mark.parametrize("helo", [
    "evil\r\nX-Injected: yes",
    "evil\nX-Injected: yes",
    "evil\rX-Injected: yes",
    "evil\r\n\r\nbody starts here",
    "a b\tc\x00d\x7f",
    "evil\x85X-Injected: yes",             # NEL, a line break to some software
    "evil\u2028X-Injected:\u00a0yes",      # LINE SEPARATOR, NO-BREAK SPACE
    "\udcff\udcfe",
])
def test_hostile_helo_cannot_inject_headers(helo: str) -> None:
    block = trace_headers(dataclasses.replace(BASE, helo=helo)).decode()
    lines = block.split("\n")
    assert lines[-1] == ""
    assert lines[0].startswith("Return-Path: ")
    assert lines[1].startswith("Received: from ")
    assert all(line.startswith("\t") for line in lines[2:-1])
    assert "\r" not in block
    assert not any(line.startswith(("X-Injected", "body")) for line in lines)
    helo_shown = lines[1][len("Received: from "):].rsplit(" ([", 1)[0]
    assert all(0x21 <= ord(c) <= 0x7E for c in helo_shown), helo_shown


def test_empty_and_overlong_helo() -> None:
    assert b"from unknown ([" in trace_headers(dataclasses.replace(BASE, helo=""))
    long_block = trace_headers(dataclasses.replace(BASE, helo="h" * 5000)).decode()
    assert "h" * 255 + " ([" in long_block
    assert "h" * 256 not in long_block


def test_utf8_helo_is_kept() -> None:
    block = trace_headers(dataclasses.replace(BASE, helo="bücher.example"))
    assert "from bücher.example ([".encode() in block


def test_to_maildir_lines() -> None:
    assert to_maildir_lines(b"a\r\nb\r\n\r\nc\r\n") == b"a\nb\n\nc\n"
    assert to_maildir_lines(b"lone\rcr\n") == b"lone\rcr\n"
