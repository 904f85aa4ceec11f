"""SMTP smuggling and other hostile message data, over real sockets.

SMTP smuggling (CVE-2023-51764 and its family): a message carries a fake end of data (LF.LF,
LF.CRLF, CRLF.LF, CR.CRLF, ...) followed by a second transaction. A server that honours the
fake end runs the smuggled transaction under the first one's authority. Like Postfix with
`smtpd_forbid_bare_newline = reject`, the MX refuses any message with a bare CR or LF, and
only at the real CRLF.CRLF, so the smuggled "commands" are never read as commands and the
session stays in step. NUL is refused too; empty and header-only messages are fine.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.transactions import as_sent, assert_in_step, open_transaction

NewAccount = Callable[[str], str]
FAKE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\r", b"\n.\r",
             b"\r\n.\r\r\n", b"\r\r\n.\r\r\n"]


def smuggled_transaction(victim: str) -> bytes:
    return (b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<" + victim.encode()
            + b">\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n")


@pytest.mark.parametrize("fake_end", FAKE_ENDS, ids=[repr(end) for end in FAKE_ENDS])
def test_smuggled_transaction_is_refused_and_never_run(
        mx: EngineProcess, new_account: NewAccount, fake_end: bytes) -> None:
    carrier, victim = new_account("carrier"), new_account("victim")
    with open_transaction(mx, carrier) as wire:
        wire.send(b"Subject: carrier\r\n\r\nhello" + fake_end + smuggled_transaction(victim)
                  + b".\r\n")
        assert str(wire.read_reply()) == replies.BARE_LINE_END
        assert_in_step(wire, mx, carrier)        # exactly one reply came for all of it
    assert mx.messages(victim) == []
    assert len(mx.messages(carrier)) == 1         # only assert_in_step's message


@pytest.mark.parametrize("body", [
    b"Subject: bare LF\nX: y\r\n\r\nbody\r\n",
    b"Subject: x\r\n\r\nbare LF at the end of the body\n",
    b"Subject: x\r\n\r\na bare CR\r in the middle\r\n",
    b"Subject: x\r\n\r\n\r\r\n",
    b"\n",
], ids=["in header", "end of body", "inside a line", "CR before CRLF", "only LF"])
def test_bare_line_ends_refuse_the_message(
        mx: EngineProcess, new_account: NewAccount, body: bytes) -> None:
    rcpt = new_account("bare")
    with open_transaction(mx, rcpt) as wire:
        wire.send(body + b"\r\n.\r\n")
        assert str(wire.read_reply()) == replies.BARE_LINE_END
        assert mx.messages(rcpt) == []
        assert_in_step(wire, mx, rcpt)


def test_commands_pipelined_after_a_refused_message_are_answered_in_order(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("pipelined")
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: x\n\r\n.\r\nNOOP\r\nRSET\r\nNOOP\r\n")
        assert [str(wire.read_reply()) for _ in range(4)] == [
            replies.BARE_LINE_END, replies.OK, replies.OK, replies.OK]
        assert_in_step(wire, mx, rcpt)


def test_nul_in_message_is_refused(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("nul")
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: nul\r\n\r\nbefore\x00after\r\n.\r\n")
        assert str(wire.read_reply()) == replies.NUL_IN_MESSAGE
        assert mx.messages(rcpt) == []
        assert_in_step(wire, mx, rcpt)


def test_empty_message_is_accepted_and_stored_with_trace_fields_only(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("empty")
    with open_transaction(mx, rcpt) as wire:
        wire.send(b".\r\n")
        assert wire.read_reply().code == 250
        assert str(wire.command("NOOP")) == replies.OK
    (stored,) = mx.messages(rcpt)
    assert stored.startswith(b"Return-Path: <sender@example.org>")
    assert as_sent(stored) == b""


def test_header_only_message_is_accepted_and_stored_as_sent(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("headers")
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: only headers\r\nX-Test: 1\r\n.\r\n")
        assert wire.read_reply().code == 250
    (stored,) = mx.messages(rcpt)
    assert as_sent(stored) == b"Subject: only headers\nX-Test: 1\n"


def test_dot_stuffing_is_undone_wherever_the_segments_split(
        mx: EngineProcess, new_account: NewAccount) -> None:
    """Dotted lines sent in one write and in awkward pieces come out the same."""
    rcpt = new_account("dots")
    lines = [b"Subject: dots", b"", b".", b"..", b".leading", b"middle.dot", b"..double"] * 50
    wire_form = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                         for line in lines) + b".\r\n"
    expected = b"".join(line + b"\n" for line in lines)
    for pieces in ([wire_form], [wire_form[i:i + 7] for i in range(0, len(wire_form), 7)],
                   [wire_form[:1], wire_form[1:3], wire_form[3:-4], wire_form[-4:-2],
                    wire_form[-2:]]):
        with open_transaction(mx, rcpt) as wire:
            for piece in pieces:
                wire.send(piece)
                time.sleep(0.001)
            assert wire.read_reply().code == 250
    assert [as_sent(stored) for stored in mx.messages(rcpt)] == [expected] * 3


def test_large_message_in_one_write_is_stored_exactly(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("large")
    body = b"".join(b"line %06d " % n + b"x" * 60 + b"\r\n" for n in range(3000))
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: large\r\n\r\n" + body + b".\r\nNOOP\r\n")
        assert wire.read_reply().code == 250
        assert str(wire.read_reply()) == replies.OK
    (stored,) = mx.messages(rcpt)
    assert as_sent(stored) == (b"Subject: large\r\n\r\n" + body).replace(b"\r\n", b"\n")


def test_message_complete_before_a_hangup_is_delivered_and_logged(
        mx: EngineProcess, new_account: NewAccount) -> None:
    """The client sends the end of data and hangs up at once: the message is whole, so it
    is stored, and the log says so (the client may send it again: at-least-once)."""
    rcpt = new_account("hangup")
    with open_transaction(mx, rcpt) as wire:
        wire.send(b"Subject: hang up\r\n\r\nbye\r\n.\r\n")
        wire.sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 5
    while not mx.messages(rcpt) and time.monotonic() < deadline:
        time.sleep(0.05)
    (stored,) = mx.messages(rcpt)
    assert as_sent(stored) == b"Subject: hang up\n\nbye\n"
    time.sleep(0.2)
    assert f'"recipients": ["{rcpt}"]' in mx.log_text()
