"""CHUNKING (RFC 3030) over real sockets: BDAT chunks, pipelined, and every way to misuse them.

The octets of a chunk are never commands, whatever they contain and whether or not the
chunk is accepted; after a failed chunk the transaction stays failed until LAST or RSET.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted
from harness.transactions import SENDER, as_sent, assert_in_step, open_transaction

MAX_SIZE = 8192
MX_SETTINGS = {"limits__max_message_size": MAX_SIZE, "limits__max_line_length": 1000}
NewAccount = Callable[[str], str]


def chunk(wire: SMTPWire, data: bytes, last: bool = False) -> None:
    """Send one BDAT command with its octets (no reply read)."""
    wire.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)


def received(size: int) -> str:
    return replies.CHUNK_RECEIVED.format(octets=size)


def test_ehlo_advertises_chunking_but_not_binarymime(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port, None) as wire:
        reply = wire.command("EHLO client.example.org")
    keywords = [line[4:] for line in reply.lines]
    assert "CHUNKING" in keywords
    assert "BINARYMIME" not in keywords
    assert keywords[-1] == "HELP"


def test_one_chunk_with_last_is_delivered_as_sent(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("bdat")
    message = b"Subject: chunked\r\n\r\n.leading dot stays\r\n.\r\nafter a lone dot\r\n"
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, message, last=True)
        assert wire.read_reply().code == 250
        assert_in_step(wire, mx, rcpt)
    first = mx.messages(rcpt)[0]
    assert as_sent(first) == message.replace(b"\r\n", b"\n")


def test_pipelined_chunks_get_one_reply_each(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("pipelined")
    parts = [b"Subject: parts\r\n", b"\r\nfirst ", b"line\r\nMAIL FROM:<x@y>\r\n"]
    with greeted(mx.smtp_port) as wire:
        wire.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{rcpt}>\r\n".encode())
        for part in parts:
            chunk(wire, part)
        chunk(wire, b"", last=True)
        wire.send(b"NOOP\r\n")
        got = [str(wire.read_reply()) for _ in range(7)]
    assert got[:5] == [replies.SENDER_OK, replies.RECIPIENT_OK,
                       *(received(len(part)) for part in parts)]
    assert got[5].startswith("250 2.0.0 OK: queued as ")
    assert got[6] == replies.OK
    (stored,) = mx.messages(rcpt)
    assert as_sent(stored) == b"".join(parts).replace(b"\r\n", b"\n")


def test_bdat_0_last_alone_delivers_an_empty_message(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("empty")
    with open_transaction(mx, rcpt, data=False) as wire:
        assert wire.command("BDAT 0 LAST").code == 250
    (stored,) = mx.messages(rcpt)
    assert as_sent(stored) == b""


def test_bare_line_ends_are_fine_in_chunks(mx: EngineProcess, new_account: NewAccount) -> None:
    """BDAT has no end-of-data marker to fake, so the smuggling rule does not apply."""
    rcpt = new_account("bare")
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, b"Subject: bare\n\nline\n.\nend\r\n", last=True)
        assert wire.read_reply().code == 250
    assert len(mx.messages(rcpt)) == 1


@pytest.mark.parametrize(("opening", "expected"), [
    ([], replies.BAD_SEQUENCE_HELO),
    (["EHLO client.example.org"], replies.BAD_SEQUENCE_NEED_MAIL),
    (["EHLO client.example.org", f"MAIL FROM:<{SENDER}>"], replies.BAD_SEQUENCE_NEED_RCPT),
], ids=["before EHLO", "before MAIL", "before RCPT"])
def test_chunk_out_of_sequence_is_read_and_refused(
        mx: EngineProcess, opening: list[str], expected: str) -> None:
    with greeted(mx.smtp_port, None) as wire:
        for line in opening:
            assert wire.command(line).code == 250
        chunk(wire, b"NOOP\r\nNOOP\r\nQUIT\r\n", last=True)   # octets, not commands
        assert str(wire.read_reply()) == expected
        assert str(wire.command("NOOP")) == replies.OK


@pytest.mark.parametrize("arguments", ["", "x", "12x", "-1", "1 LASTX", "1 LAST X", "LAST",
                                       "\u0661", "1  LAST", "0x10"])
def test_malformed_bdat_gets_501(mx: EngineProcess, arguments: str) -> None:
    with greeted(mx.smtp_port) as wire:
        assert str(wire.command(f"BDAT {arguments}".rstrip())) == replies.BDAT_SYNTAX
        assert str(wire.command("NOOP")) == replies.OK


def test_data_after_bdat_is_refused_and_fails_the_transaction(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("mixed")
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, b"Subject: mixed\r\n")
        assert str(wire.read_reply()) == received(16)
        assert str(wire.command("DATA")) == replies.DATA_AFTER_BDAT
        chunk(wire, b"more\r\n", last=True)
        assert str(wire.read_reply()) == replies.DATA_AFTER_BDAT
        assert mx.messages(rcpt) == []
        assert_in_step(wire, mx, rcpt)


def test_rcpt_after_bdat_is_refused(mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt, other = new_account("first"), new_account("late")
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, b"Subject: x\r\n")
        assert wire.read_reply().code == 250
        assert str(wire.command(f"RCPT TO:<{other}>")) == replies.RCPT_AFTER_BDAT
        chunk(wire, b"\r\nbody\r\n", last=True)
        assert wire.read_reply().code == 250
    assert len(mx.messages(rcpt)) == 1
    assert mx.messages(other) == []


def test_oversize_chunks_are_read_and_refused_to_the_last(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("big")
    part = b"x" * 78 + b"\r\n"
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, part * 60)                        # 4800 octets: fine
        chunk(wire, part * 60)                        # 9600 in all: over 8192
        chunk(wire, part * 60)                        # already in the pipeline
        chunk(wire, b"NOOP\r\n", last=True)
        got = [str(wire.read_reply()) for _ in range(4)]
        assert got == [received(4800), *[replies.MESSAGE_TOO_BIG] * 3]
        assert mx.messages(rcpt) == []
        assert_in_step(wire, mx, rcpt)


def test_message_of_exactly_the_limit_is_accepted_and_one_more_octet_is_not(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("exact")
    with open_transaction(mx, rcpt, data=False) as wire:
        body = (b"x" * 78 + b"\r\n") * 102 + b"y" * 30 + b"\r\n"
        assert len(body) == MAX_SIZE
        chunk(wire, body[:5000])
        chunk(wire, body[5000:], last=True)
        assert wire.read_reply().code == 250
        assert wire.read_reply().code == 250
        assert str(wire.command(f"MAIL FROM:<{SENDER}>")) == replies.SENDER_OK
        assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
        chunk(wire, body + b"!", last=True)
        assert str(wire.read_reply()) == replies.MESSAGE_TOO_BIG
    assert len(mx.messages(rcpt)) == 1


@pytest.mark.parametrize(("data", "expected"), [
    (b"Subject: nul\r\n\r\n\x00\r\n", replies.NUL_IN_MESSAGE),
    (b"Subject: long\r\n\r\n" + b"q" * 1200 + b"\r\n", replies.LINE_TOO_LONG),
], ids=["NUL", "long line"])
def test_bad_content_fails_the_transaction(
        mx: EngineProcess, new_account: NewAccount, data: bytes, expected: str) -> None:
    rcpt = new_account("bad")
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, data)
        chunk(wire, b"tail\r\n", last=True)
        assert [str(wire.read_reply()) for _ in range(2)] == [expected, expected]
        assert mx.messages(rcpt) == []
        assert_in_step(wire, mx, rcpt)


def test_rset_after_a_failed_chunk_starts_afresh(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("rset")
    with open_transaction(mx, rcpt, data=False) as wire:
        chunk(wire, b"\x00")
        assert str(wire.read_reply()) == replies.NUL_IN_MESSAGE
        assert str(wire.command("RSET")) == replies.OK
        assert str(wire.command(f"MAIL FROM:<{SENDER}>")) == replies.SENDER_OK
        assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
        chunk(wire, b"Subject: clean\r\n\r\nok\r\n", last=True)
        assert wire.read_reply().code == 250
    assert len(mx.messages(rcpt)) == 1


def test_huge_declared_chunk_is_read_without_buffering_and_the_engine_lives(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("huge")
    with open_transaction(mx, rcpt, data=False) as wire:
        wire.send(b"BDAT 1000000000000 LAST\r\n")
        for _ in range(50):
            wire.send(b"z" * 65536)                   # 3 MB of a declared terabyte
    with greeted(mx.smtp_port) as again:
        assert str(again.command("NOOP")) == replies.OK
    assert mx.messages(rcpt) == []
