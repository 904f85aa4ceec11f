"""Delivery through the MX with smtplib: recipients, aliases, duplicates, trace headers, links.

Every test uses accounts of its own (`new_account`) on the module's one engine, so counting
the messages in a Maildir counts what that test delivered.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess

NewAccount = Callable[[str], str]
SENDER = "sender@example.org"


def send(mx: EngineProcess, recipients: list[str], body: bytes = b"hello\r\n",
         subject: str = "test", helo: str | None = None) -> dict[str, tuple[int, bytes]]:
    """Send one message with smtplib; return the refused recipients."""
    message = (f"From: <{SENDER}>\r\nTo: <{recipients[0]}>\r\nSubject: {subject}\r\n\r\n"
               .encode() + body)
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        if helo is not None:
            client.helo(helo)
        return client.sendmail(SENDER, recipients, message)


def files(mx: EngineProcess, address: str) -> list[Path]:
    root = mx.maildir(address)
    return sorted([*(root / "new").iterdir(), *(root / "cur").iterdir()])


def parsed(data: bytes) -> EmailMessage:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def received(data: bytes) -> str:
    """Our Received header (the first one), unfolded."""
    return " ".join(str(parsed(data)["Received"]).split())


def reply_line(code: int, text: bytes) -> str:
    return f"{code} {text.decode()}"


# -- recipients ------------------------------------------------------------------------------

def test_one_recipient_gets_the_message_with_trace_headers(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("one")
    # smtplib dot-stuffs ".dotted" on the wire; the server must undo it.
    assert send(mx, [rcpt], b"line one\r\n.dotted\r\n", subject="single") == {}
    (data,) = mx.messages(rcpt)
    assert data.startswith(f"Return-Path: <{SENDER}>\nReceived: from ".encode())
    header = received(data)
    assert header.startswith("from ")
    assert "([127.0.0.1])" in header
    assert "by mx.mailstead.test (Mailstead) with ESMTP id " in header
    assert f"for <{rcpt}>;" in header
    assert data.endswith(b"Subject: single\n\nline one\n.dotted\n")
    assert b"\r" not in data    # Maildir files use LF line ends


def test_several_recipients_share_one_hard_linked_copy(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpts = [new_account("multi") for _ in range(3)]
    assert send(mx, rcpts, subject="three") == {}
    paths = [files(mx, rcpt) for rcpt in rcpts]
    assert all(len(found) == 1 for found in paths), paths
    stats = [found[0].stat() for found in paths]
    assert len({(s.st_dev, s.st_ino) for s in stats}) == 1, "expected one inode for all"
    assert stats[0].st_nlink == 3
    header = received(paths[0][0].read_bytes())
    assert " for " not in header, header     # several recipients: none named (RFC 5321 4.4)


def test_helo_session_is_recorded_as_smtp(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("helo")
    assert send(mx, [rcpt], helo="old.example.org") == {}
    header = received(mx.messages(rcpt)[0])
    assert header.startswith("from old.example.org ([127.0.0.1])")
    assert " with SMTP id " in header


def test_null_sender_bounce_is_delivered(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("bounce")
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        assert client.sendmail("<>", [rcpt], b"Subject: bounce\r\n\r\nx\r\n") == {}
    assert mx.messages(rcpt)[0].startswith(b"Return-Path: <>\n")


# -- aliases ---------------------------------------------------------------------------------

def test_alias_with_several_targets(mx: EngineProcess, new_account: NewAccount) -> None:
    first, second = new_account("team"), new_account("team")
    mx.directory.add_alias("team-list@example.test", first)
    mx.directory.add_alias("team-list@example.test", second)
    assert send(mx, ["team-list@example.test"]) == {}
    for rcpt in (first, second):
        (data,) = mx.messages(rcpt)
        assert "for <team-list@example.test>;" in received(data)
    assert files(mx, first)[0].stat().st_ino == files(mx, second)[0].stat().st_ino


def test_subaddress_goes_to_the_account(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("sub")
    local, _, domain = rcpt.partition("@")
    assert send(mx, [f"{local}+newsletter@{domain}"]) == {}
    (data,) = mx.messages(rcpt)
    assert f"for <{local}+newsletter@{domain}>;" in received(data)


def test_catch_all_takes_unknown_local_parts_only(mx: EngineProcess) -> None:
    mx.add_domain("catchall.test")
    mx.add_account("postmaster@catchall.test")
    mx.add_account("known@catchall.test")
    mx.directory.add_alias("@catchall.test", "postmaster@catchall.test")
    assert send(mx, ["whoever@catchall.test", "Someone.Else@catchall.test"]) == {}
    assert send(mx, ["known@catchall.test"]) == {}
    assert len(mx.messages("postmaster@catchall.test")) == 1
    assert len(mx.messages("known@catchall.test")) == 1


def test_alias_loop_without_an_account_is_unknown(mx: EngineProcess) -> None:
    mx.directory.add_alias("loop-a@example.test", "loop-b@example.test")
    mx.directory.add_alias("loop-b@example.test", "loop-a@example.test")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mx, ["loop-a@example.test"])
    (code, text), = refused.value.recipients.values()
    assert reply_line(code, text) == replies.UNKNOWN_USER


def test_alias_loop_reaching_an_account_delivers_once(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("looped")
    mx.directory.add_alias("ring-a@example.test", "ring-b@example.test")
    mx.directory.add_alias("ring-b@example.test", "ring-a@example.test")
    mx.directory.add_alias("ring-b@example.test", rcpt)
    assert send(mx, ["ring-a@example.test", "ring-b@example.test"]) == {}
    assert len(mx.messages(rcpt)) == 1


# -- duplicates ------------------------------------------------------------------------------

def test_repeated_recipient_gets_one_copy(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("dup")
    assert send(mx, [rcpt, rcpt.upper().replace("EXAMPLE.TEST", "example.test"), rcpt]) == {}
    (path,) = files(mx, rcpt)
    assert path.stat().st_nlink == 1
    assert f"for <{rcpt}>;" in received(path.read_bytes())


def test_two_aliases_of_one_user_give_one_copy(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("aliased")
    local = rcpt.partition("@")[0]
    mx.directory.add_alias(f"{local}-sales@example.test", rcpt)
    mx.directory.add_alias(f"{local}-info@example.test", rcpt)
    assert send(mx, [f"{local}-sales@example.test", f"{local}-info@example.test", rcpt,
                     f"{local}+tag@example.test"]) == {}
    assert len(mx.messages(rcpt)) == 1


# -- refusals --------------------------------------------------------------------------------

def test_unknown_user_is_refused_550(mx: EngineProcess) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mx, ["nobody-here@example.test"])
    (code, text), = refused.value.recipients.values()
    assert reply_line(code, text) == replies.UNKNOWN_USER


def test_unknown_user_does_not_stop_the_others(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("partial")
    refused = send(mx, ["nobody-here@example.test", rcpt])
    assert {k: reply_line(*v) for k, v in refused.items()} == {
        "nobody-here@example.test": replies.UNKNOWN_USER}
    assert len(mx.messages(rcpt)) == 1


def test_relay_attempt_is_refused_554(mx: EngineProcess) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mx, ["victim@elsewhere.example.org"])
    (code, text), = refused.value.recipients.values()
    assert reply_line(code, text) == replies.RELAY_DENIED


def test_disabled_account_is_refused(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("gone")
    mx.directory.set_enabled(rcpt, False)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mx, [rcpt])
    (code, text), = refused.value.recipients.values()
    assert reply_line(code, text) == replies.MAILBOX_DISABLED
    assert mx.messages(rcpt) == []


def test_nothing_left_in_tmp(mx: EngineProcess) -> None:
    """After all the deliveries above, no Maildir keeps a file in tmp/."""
    leftovers = [p for p in (mx.data_dir / "mail").glob("*/*/tmp/*")]
    assert leftovers == []
    assert os.path.isdir(mx.data_dir / "mail" / "example.test")
