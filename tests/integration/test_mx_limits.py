"""The MX's limits on untrusted input, over real sockets: size, recipients, line lengths,
and garbage bytes (SMTP smuggling: test_mx_smuggling.py). Each limit gives its catalogue
reply, stores nothing, and leaves the session usable (or closes it on purpose).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted

MAX_SIZE = 8192
MAX_RECIPIENTS = 3
MX_SETTINGS = {"limits__max_message_size": MAX_SIZE,
               "limits__max_recipients": MAX_RECIPIENTS,
               "limits__max_line_length": 1000}
NewAccount = Callable[[str], str]


def open_transaction(mx: EngineProcess, rcpt: str) -> SMTPWire:
    """A session that has had MAIL, RCPT and DATA accepted (354)."""
    wire = greeted(mx.smtp_port)
    assert str(wire.command("MAIL FROM:<sender@example.org>")) == replies.SENDER_OK
    assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
    assert wire.command("DATA").code == 354
    return wire


def assert_usable(wire: SMTPWire, mx: EngineProcess, rcpt: str) -> None:
    """The session still works: a small message goes through and is stored."""
    before = len(mx.messages(rcpt))
    assert str(wire.command("NOOP")) == replies.OK
    assert str(wire.command("MAIL FROM:<sender@example.org>")) == replies.SENDER_OK
    assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
    assert wire.command("DATA").code == 354
    wire.send(b"Subject: after\r\n\r\nstill here\r\n.\r\n")
    assert wire.read_reply().code == 250
    assert len(mx.messages(rcpt)) == before + 1


def body_of_exactly(size: int) -> bytes:
    """Message bytes (CRLF lines, no dot at a line start) totalling exactly `size` octets."""
    line = b"x" * 78 + b"\r\n"
    whole, rest = divmod(size, len(line))
    tail = b"y" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    data = line * whole + tail
    if rest == 1:
        data = data[:-3] + b"zz\r\n"
    assert len(data) == size
    return data


# -- message size ----------------------------------------------------------------------------

def test_declared_size_over_the_limit_is_refused_at_mail(mx: EngineProcess) -> None:
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        client.ehlo()
        assert client.does_esmtp
        assert client.esmtp_features["size"] == str(MAX_SIZE)
        code, text = client.mail("sender@example.org", [f"SIZE={MAX_SIZE + 1}"])
    assert f"{code} {text.decode()}" == replies.MESSAGE_TOO_BIG


def test_oversize_message_gets_552_and_nothing_is_stored(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("big")
    with open_transaction(mx, rcpt) as wire:
        wire.send(body_of_exactly(MAX_SIZE + 1) + b".\r\n")
        assert str(wire.read_reply()) == replies.MESSAGE_TOO_BIG
        assert mx.messages(rcpt) == []
        assert_usable(wire, mx, rcpt)


def test_message_of_exactly_the_limit_is_accepted(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("exact")
    with open_transaction(mx, rcpt) as wire:
        wire.send(body_of_exactly(MAX_SIZE) + b".\r\n")
        assert wire.read_reply().code == 250
    (data,) = mx.messages(rcpt)
    assert data.endswith(body_of_exactly(MAX_SIZE).replace(b"\r\n", b"\n"))


def test_far_oversize_message_is_drained_not_buffered(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("huge")
    with open_transaction(mx, rcpt) as wire:
        chunk = (b"z" * 998 + b"\r\n") * 1000
        for _ in range(4):                       # 4 MB against an 8 KB limit
            wire.send(chunk)
        wire.send(b".\r\n")
        assert str(wire.read_reply()) == replies.MESSAGE_TOO_BIG
        assert_usable(wire, mx, rcpt)


# -- recipients ------------------------------------------------------------------------------

def test_too_many_recipients_gets_452(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpts = [new_account("many") for _ in range(MAX_RECIPIENTS + 2)]
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        refused = client.sendmail("sender@example.org", rcpts, b"Subject: many\r\n\r\nx\r\n")
    assert {k: f"{c} {t.decode()}" for k, (c, t) in refused.items()} == {
        rcpt: replies.TOO_MANY_RECIPIENTS for rcpt in rcpts[MAX_RECIPIENTS:]}
    assert [len(mx.messages(r)) for r in rcpts] == [1] * MAX_RECIPIENTS + [0, 0]


# -- line lengths ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", [600, 1200, 70_000])
def test_over_long_command_line_gets_500_and_session_survives(
        mx: EngineProcess, new_account: NewAccount, length: int) -> None:
    rcpt = new_account("longcmd")
    with greeted(mx.smtp_port) as wire:
        assert str(wire.command(b"NOOP " + b"a" * length)) == replies.LINE_TOO_LONG
        # RFC 3461 5 lets MAIL lines grow by 100 octets for RET and ENVID (limit 512+136).
        long_local = b"b" * max(length, 700)
        assert str(wire.command(b"MAIL FROM:<" + long_local + b"@example.org>")) == (
            replies.LINE_TOO_LONG)
        assert_usable(wire, mx, rcpt)


@pytest.mark.parametrize("length", [1000, 50_000])
def test_over_long_data_line_gets_500_and_nothing_is_stored(
        mx: EngineProcess, new_account: NewAccount, length: int) -> None:
    rcpt = new_account("longline")
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: long\r\n\r\n" + b"q" * length + b"\r\nshort\r\n.\r\n")
        assert str(wire.read_reply()) == replies.LINE_TOO_LONG
        assert mx.messages(rcpt) == []
        assert_usable(wire, mx, rcpt)


def test_longest_legal_lines_are_accepted_even_when_dot_stuffed(
        mx: EngineProcess, new_account: NewAccount) -> None:
    """RFC 5322 2.1.1 allows 998 characters; a leading dot makes it 999 on the wire."""
    rcpt = new_account("longest")
    plain, dotted = b"p" * 998, b"." + b"d" * 997
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: longest\r\n\r\n" + plain + b"\r\n." + dotted + b"\r\n.\r\n")
        reply = wire.read_reply()
    assert reply.code == 250, str(reply)
    (data,) = mx.messages(rcpt)
    assert data.endswith(b"\n\n" + plain + b"\n" + dotted + b"\n")


# -- garbage ---------------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"\x00", b"\x00\x00\x00\x00", b"NOOP\x00", b"\x00NOOP", b"\xff\xfe\xfd",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",     # a TLS ClientHello on the plain port
    b"\x1b[31mEHLO", b"\x7f\x7f", b"HELO\tclient",
])
def test_binary_garbage_gets_5xx_and_session_survives(
        mx: EngineProcess, new_account: NewAccount, garbage: bytes) -> None:
    rcpt = new_account("garbage")
    with greeted(mx.smtp_port) as wire:
        reply = wire.command(garbage)
        assert str(reply) == replies.SYNTAX_ERROR
        assert_usable(wire, mx, rcpt)


def test_nul_and_8bit_in_addresses_are_refused_permanently(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port) as wire:
        for sender in (b"a\x00b@example.org", b"\xff@example.org", b"a@exam\x00ple.org"):
            reply = wire.command(b"MAIL FROM:<" + sender + b">")
            assert str(reply) == replies.BAD_SENDER_SYNTAX, (sender, str(reply))
        assert str(wire.command("MAIL FROM:<sender@example.org>")) == replies.SENDER_OK
        for rcpt in (b"al\x00ice@example.test", b"\xc3(@example.test", b"alice@\xff.test"):
            reply = wire.command(b"RCPT TO:<" + rcpt + b">")
            assert str(reply) == replies.BAD_RECIPIENT_SYNTAX, (rcpt, str(reply))


def test_many_unknown_verbs_close_the_connection(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port) as wire:
        for verb in (b"\x00", b"XYZZY", b"\x01\x02", b"GET"):
            assert str(wire.command(verb)) == replies.SYNTAX_ERROR
        final = wire.command(b"PLUGH")
        assert final.last.startswith("502 5.5.1 "), str(final)
        assert wire.is_closed()
    with greeted(mx.smtp_port) as again:                  # the server itself is fine
        assert str(again.command("NOOP")) == replies.OK


def test_non_ascii_lines_do_not_close_the_connection(mx: EngineProcess) -> None:
    """Lines with non-ASCII verbs are answered 500 each; only the idle timer ends them."""
    with greeted(mx.smtp_port) as wire:
        for _ in range(10):
            assert str(wire.command(b"\xc3\xa9\xff")) == replies.SYNTAX_ERROR
            assert str(wire.command(b"")) == replies.SYNTAX_ERROR
        assert str(wire.command("NOOP")) == replies.OK
