"""The client's pure protocol core: reply parsing, EHLO capabilities, outcomes."""

from __future__ import annotations

import pytest

from appliance.outbound.smtp_client_protocol import (
    MAX_REPLY_LINE,
    MAX_REPLY_LINES,
    PeerProtocolError,
    Reply,
    ReplyParser,
    helo_capabilities,
    parse_ehlo,
)
from appliance.outbound.types import Outcome


def test_single_line_reply() -> None:
    assert ReplyParser().feed(b"250 2.1.0 Ok\r\n") == [Reply(250, ("2.1.0 Ok",))]


def test_multi_line_reply_comes_out_once_complete() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250-peer.test\r\n250-PIPELINING\r\n") == []
    assert parser.feed(b"250 SIZE 100\r\n") == [
        Reply(250, ("peer.test", "PIPELINING", "SIZE 100"))]


def test_bytes_split_anywhere_give_the_same_replies() -> None:
    data = b"250-a\r\n250 b\r\n354 go\r\n"
    parser = ReplyParser()
    replies = [r for i in range(len(data)) for r in parser.feed(data[i:i + 1])]
    assert replies == ReplyParser().feed(data)
    assert parser.pending == 0


def test_several_pipelined_replies_in_one_read() -> None:
    replies = ReplyParser().feed(b"250 ok\r\n550 5.1.1 no\r\n250 ok\r\n")
    assert [r.code for r in replies] == [250, 550, 250]


def test_bare_lf_line_ends_are_tolerated() -> None:
    assert ReplyParser().feed(b"220 hi\n") == [Reply(220, ("hi",))]


def test_code_only_line() -> None:
    assert ReplyParser().feed(b"250\r\n") == [Reply(250, ("",))]


def test_pending_counts_partial_lines_and_partial_replies() -> None:
    parser = ReplyParser()
    parser.feed(b"250-first\r\n25")
    assert parser.pending > 0


@pytest.mark.parametrize("data", [
    b"hello\r\n",                 # no code
    b"25 short\r\n",
    b"650 bad class\r\n",         # RFC 5321 4.2: first digit 2 to 5
    b"260 bad second digit\r\n",  # second digit 0 to 5
    b"250text\r\n",               # no separator
    b"250-a\r\n251 b\r\n",        # the code changes inside a multi-line reply
])
def test_malformed_replies_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        ReplyParser().feed(data)


def test_overlong_line_is_refused_even_without_a_line_end() -> None:
    with pytest.raises(PeerProtocolError):
        ReplyParser().feed(b"250 " + b"x" * MAX_REPLY_LINE)


def test_endless_multi_line_reply_is_refused() -> None:
    with pytest.raises(PeerProtocolError):
        ReplyParser().feed(b"250-x\r\n" * (MAX_REPLY_LINES + 1))


def test_control_characters_in_text_are_replaced() -> None:
    (reply,) = ReplyParser().feed(b"550 bad\x00thing\x1b[31m\rX\r\n")
    assert reply.text == "550 bad?thing?[31m?X"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    (reply,) = ReplyParser().feed(b"550 caf\xe9\r\n")
    assert reply.text == "550 caf\ufffd"


@pytest.mark.parametrize(("reply", "enhanced"), [
    (Reply(550, ("5.1.1 no such user",)), "5.1.1"),
    (Reply(250, ("2.0.0",)), "2.0.0"),
    (Reply(550, ("4.1.1 class does not match",)), None),
    (Reply(550, ("no enhanced code",)), None),
])
def test_enhanced_status_code(reply: Reply, enhanced: str | None) -> None:
    assert reply.enhanced == enhanced


@pytest.mark.parametrize(("code", "outcome"), [
    (250, Outcome.DELIVERED), (251, Outcome.DELIVERED), (450, Outcome.DEFERRED),
    (421, Outcome.DEFERRED), (550, Outcome.FAILED), (354, Outcome.DEFERRED),
])
def test_outcome_of_a_final_reply(code: int, outcome: Outcome) -> None:
    assert Reply(code, ("x",)).outcome is outcome


def test_text_joins_the_lines() -> None:
    assert Reply(550, ("5.7.1 first", "5.7.1 second")).text == "550 5.7.1 first 5.7.1 second"


def test_parse_ehlo() -> None:
    reply = Reply(250, ("mx.peer.test Hello", "PIPELINING", "SIZE 1000", "8bitmime",
                        "DSN", "STARTTLS", "AUTH PLAIN LOGIN"))
    caps = parse_ehlo(reply)
    assert caps.name == "mx.peer.test"
    assert caps.has("PIPELINING")
    assert caps.has("8BITMIME")
    assert caps.has("STARTTLS")
    assert caps.size_limit == 1000
    assert caps.keywords["AUTH"] == "PLAIN LOGIN"
    assert caps.esmtp


@pytest.mark.parametrize(("line", "limit"), [("SIZE", None), ("SIZE 0", None),
                                             ("SIZE junk", None), ("SIZE 52428800", 52428800)])
def test_size_limit(line: str, limit: int | None) -> None:
    assert parse_ehlo(Reply(250, ("peer", line))).size_limit == limit


def test_helo_offers_nothing() -> None:
    caps = helo_capabilities(Reply(250, ("peer.test",)))
    assert caps.name == "peer.test"
    assert not caps.keywords
    assert not caps.esmtp


def test_reply_text_is_bounded() -> None:
    reply = Reply(550, tuple("x" * 4000 for _ in range(50)))
    assert len(reply.text) == 1000
    assert reply.text.endswith("...")
