"""What a logged-in account may send (RFC 6409): its own envelope sender and From/Sender
addresses (or its aliases'), at its sending rate, with Date and Message-ID completed, local
copies delivered and remote recipients queued."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable

from appliance.outbound.spool import Spool
from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import Reply
from harness.submission import logged_in, message, transaction

RATE_LIMIT = 5
NewAccount = Callable[[str], str]      # the `new_account` fixture
MX_SETTINGS = {"auth__failure_delay_ms": 0, "submission__rate_limit_messages": RATE_LIMIT,
               # Remote delivery must not finish (or bounce) while a test looks at the queue.
               "outbound__resolver": "127.0.0.1:9", "outbound__dns_timeout": 1}
QUEUED = re.compile(r"250 2\.0\.0 OK: queued as (\S+)")


def queue_id(reply: Reply) -> str:
    match = QUEUED.fullmatch(str(reply))
    assert match is not None, str(reply)
    return match.group(1)


def send(mx: EngineProcess, login: str, sender: str, recipients: list[str],
         content: bytes) -> Reply:
    with logged_in(mx, login) as wire:
        return transaction(wire, sender, recipients, content)


def parsed(data: bytes) -> email.message.EmailMessage:
    message_ = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message_, email.message.EmailMessage)
    return message_


# -- the envelope sender -------------------------------------------------------------------

def test_own_address_in_any_case_and_with_a_detail_is_accepted(mx: EngineProcess,
                                                               new_account: NewAccount) -> None:
    user, rcpt = new_account("own"), new_account("rcpt")
    local, domain = user.split("@")
    for sender in (user, user.upper(), f"{local}+lists@{domain}"):
        reply = send(mx, user, sender, [rcpt], message(user, rcpt))
        assert reply.code == 250, str(reply)
    assert len(mx.messages(rcpt)) == 3


def test_forged_envelope_senders_are_refused(mx: EngineProcess, new_account: NewAccount) -> None:
    user, other = new_account("forger"), new_account("victim")
    with logged_in(mx, user) as wire:
        for forged in (other, "ceo@elsewhere.example", "postmaster@example.test",
                       f"{user}.example.org"):
            assert str(wire.command(f"MAIL FROM:<{forged}>")) == replies.SENDER_NOT_OWNED
        assert str(wire.command(f"MAIL FROM:<{user}>")) == replies.SENDER_OK


def test_alias_sender_is_allowed_and_catch_all_is_not(mx: EngineProcess,
                                                      new_account: NewAccount) -> None:
    user, rcpt = new_account("aliased"), new_account("rcpt")
    alias = f"team-{user.split('@')[0]}@example.test"
    mx.directory.add_alias(alias, user)
    reply = send(mx, user, alias, [rcpt], message(f"Team <{alias}>", rcpt))
    assert reply.code == 250, str(reply)
    mx.add_domain("catchall.test")
    mx.directory.add_alias("@catchall.test", user)
    with logged_in(mx, user) as wire:
        assert str(wire.command("MAIL FROM:<anything@catchall.test>")) == (
            replies.SENDER_NOT_OWNED)


def test_null_sender_needs_an_own_from(mx: EngineProcess, new_account: NewAccount) -> None:
    """Read receipts go out with MAIL FROM:<> (RFC 8098 3); From still has to be ours."""
    user, rcpt = new_account("mdn"), new_account("rcpt")
    assert send(mx, user, "", [rcpt], message(user, rcpt)).code == 250
    assert str(send(mx, user, "", [rcpt], message(rcpt, rcpt))) == replies.FROM_NOT_OWNED


# -- the From and Sender header fields -----------------------------------------------------

def test_forged_from_header_is_refused(mx: EngineProcess, new_account: NewAccount) -> None:
    user, other = new_account("hdr"), new_account("other")
    for author in (other, f"Boss <{other}>", "ceo@elsewhere.example",
                   f"{user}, {other}"):
        reply = send(mx, user, user, [other], message(author, other))
        assert str(reply) == replies.FROM_NOT_OWNED, author
    assert mx.messages(other) == []


def test_forged_sender_header_is_refused(mx: EngineProcess, new_account: NewAccount) -> None:
    user, other = new_account("snd"), new_account("other")
    reply = send(mx, user, user, [other], message(user, other, extra=f"Sender: {other}\r\n"))
    assert str(reply) == replies.FROM_NOT_OWNED


def test_from_headers_that_readers_disagree_on_are_refused(mx: EngineProcess,
                                                           new_account: NewAccount) -> None:
    user, other = new_account("tricky"), new_account("other")
    for head in (f"From: {other} <{user}>\r\n",                  # display name is an address
                 f"From: {user}\r\nFrom: {other}\r\n",            # two From fields
                 f"From : {other}\r\nFrom: {user}\r\n",            # obsolete spacing
                 "From: undisclosed:;\r\n",                        # a group, no mailbox
                 f"From: =?utf-8?q?{other.replace('@', '=40')}?=\r\n",   # encoded address
                 "Subject: no From at all\r\n"):
        content = f"{head}To: {other}\r\n\r\nHi.\r\n".encode()
        assert str(send(mx, user, user, [other], content)) == replies.FROM_HEADER_INVALID, head
    assert mx.messages(other) == []


def test_alias_in_from_is_allowed(mx: EngineProcess, new_account: NewAccount) -> None:
    user, rcpt = new_account("fromalias"), new_account("rcpt")
    alias = f"info-{user.split('@')[0]}@example.test"
    mx.directory.add_alias(alias, user)
    content = message(f'"Info desk" <{alias}>', rcpt, extra=f"Sender: {user}\r\n")
    assert send(mx, user, user, [rcpt], content).code == 250


# -- what is added ---------------------------------------------------------------------------

def test_date_and_message_id_are_added_when_missing(mx: EngineProcess,
                                                    new_account: NewAccount) -> None:
    user, rcpt = new_account("bare"), new_account("rcpt")
    reply = send(mx, user, user, [rcpt], message(user, rcpt))
    (data,) = mx.messages(rcpt)
    stored = parsed(data)
    assert len(stored.get_all("Date") or []) == 1
    assert len(stored.get_all("Message-ID") or []) == 1
    assert stored["Message-ID"].startswith(f"<{queue_id(reply)}.")
    assert stored["Message-ID"].endswith("@mx.mailstead.test>")


def test_existing_date_and_message_id_are_kept(mx: EngineProcess, new_account: NewAccount) -> None:
    user, rcpt = new_account("dated"), new_account("rcpt")
    extra = ("Date: Tue, 01 Oct 2024 10:00:00 +0200\r\n"
             "Message-Id: <original.1@client.example.org>\r\n")
    assert send(mx, user, user, [rcpt], message(user, rcpt, extra=extra)).code == 250
    stored = parsed(mx.messages(rcpt)[0])
    assert stored.get_all("Date") == ["Tue, 01 Oct 2024 10:00:00 +0200"]
    assert stored.get_all("Message-ID") == ["<original.1@client.example.org>"]


def test_trace_fields_do_not_name_the_client(mx: EngineProcess, new_account: NewAccount) -> None:
    user, rcpt = new_account("trace"), new_account("rcpt")
    reply = send(mx, user, user, [rcpt], message(user, rcpt))
    (data,) = mx.messages(rcpt)
    assert data.startswith(
        f"Return-Path: <{user}>\nReceived: by mx.mailstead.test (Mailstead) with ESMTPSA "
        f"id {queue_id(reply)};\n\t".encode())
    assert b"127.0.0.1" not in data
    assert b"client.example.org" not in data               # the HELO name
    log = mx.log_text()
    assert f'"queue_id": "{queue_id(reply)}"' in log
    assert '"client": "127.0.0.1"' in log


# -- recipients ------------------------------------------------------------------------------

def test_remote_recipients_are_queued_and_local_ones_delivered(mx: EngineProcess,
                                                               new_account: NewAccount) -> None:
    user, rcpt = new_account("out"), new_account("rcpt")
    reply = send(mx, user, user, [rcpt, "friend@elsewhere.example"],
                 message(user, "friend@elsewhere.example"))
    assert reply.code == 250, str(reply)
    queued = Spool(mx.data_dir / "queue").get(queue_id(reply))
    assert queued is not None
    assert [r.address for r in queued.recipients] == ["friend@elsewhere.example"]
    assert queued.sender == user
    copy = Spool(mx.data_dir / "queue").read(queue_id(reply))
    assert copy.startswith(b"Received: by mx.mailstead.test")   # no Return-Path going out
    (local,) = mx.messages(rcpt)        # the same bytes as the queued copy, in LF form
    assert local == copy.replace(b"\r\n", b"\n")


def test_unknown_local_recipients_are_still_refused(mx: EngineProcess,
                                                    new_account: NewAccount) -> None:
    user = new_account("unk")
    with logged_in(mx, user) as wire:
        assert wire.command(f"MAIL FROM:<{user}>").code == 250
        assert str(wire.command("RCPT TO:<nobody@example.test>")) == replies.UNKNOWN_USER
        assert str(wire.command("RCPT TO:<user%elsewhere.example@example.test>")) == (
            replies.UNKNOWN_USER)


# -- sending rate ----------------------------------------------------------------------------

def test_sending_rate_limit_per_account(mx: EngineProcess, new_account: NewAccount) -> None:
    user, other, rcpt = new_account("busy"), new_account("calm"), new_account("rcpt")
    for _ in range(RATE_LIMIT - 1):
        assert send(mx, user, user, [rcpt], message(user, rcpt)).code == 250
    # Two sessions pass MAIL with one message left; only one of them gets it.
    first, second = logged_in(mx, user), logged_in(mx, user)
    with first, second:
        for wire in (first, second):
            assert wire.command(f"MAIL FROM:<{user}>").code == 250
            assert wire.command(f"RCPT TO:<{rcpt}>").code == 250
            assert wire.command("DATA").code == 354
        first.send(message(user, rcpt) + b".\r\n")
        second.send(message(user, rcpt) + b".\r\n")
        finals = sorted([str(first.read_reply()), str(second.read_reply())])
    assert finals[0].startswith("250 2.0.0 OK: queued as ")
    assert finals[1] == replies.SENDING_RATE_EXCEEDED
    with logged_in(mx, user) as wire:
        assert str(wire.command(f"MAIL FROM:<{user}>")) == replies.SENDING_RATE_EXCEEDED
    assert send(mx, other, other, [rcpt], message(other, rcpt)).code == 250
    assert len(mx.messages(rcpt)) == RATE_LIMIT + 1


def test_bdat_is_checked_like_data(mx: EngineProcess, new_account: NewAccount) -> None:
    """CHUNKING (RFC 3030) reaches the same checks and additions as DATA."""
    user, rcpt = new_account("chunks"), new_account("rcpt")
    with logged_in(mx, user) as wire:
        for author, expected in ((rcpt, replies.FROM_NOT_OWNED), (user, "250 2.0.0 OK")):
            assert wire.command(f"MAIL FROM:<{user}>").code == 250
            assert wire.command(f"RCPT TO:<{rcpt}>").code == 250
            content = message(author, rcpt)
            wire.send(f"BDAT {len(content)} LAST\r\n".encode() + content)
            assert str(wire.read_reply()).startswith(expected)
    (data,) = mx.messages(rcpt)
    assert parsed(data)["Message-ID"].endswith("@mx.mailstead.test>")
    assert data.startswith(f"Return-Path: <{user}>\nReceived: by mx.mailstead.test".encode())
