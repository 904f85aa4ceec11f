"""Fuzz the outbound client's parsers: reply reader, DATA payload, MTA-STS policy and TXT."""

from __future__ import annotations

import contextlib
import random
import re

from hypothesis import given
from hypothesis import strategies as st

from appliance.outbound.mtasts import PolicyError, parse_policy, parse_txt
from appliance.outbound.mtasts_fetch import FetchError, parse_http_response
from appliance.outbound.mx import order_mx
from appliance.outbound.smtp_client_commands import crlf_message, data_payload
from appliance.outbound.smtp_client_protocol import PeerProtocolError, Reply, ReplyParser

CODES = st.integers(200, 559).filter(lambda c: (c // 10) % 10 <= 5)
LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                    max_size=60)


@given(st.binary(max_size=2000), st.lists(st.integers(1, 50), max_size=20))
def test_any_bytes_give_replies_or_a_protocol_error(data: bytes, cuts: list[int]) -> None:
    parser = ReplyParser()
    position = 0
    try:
        for size in [*cuts, len(data)]:
            for reply in parser.feed(data[position:position + size]):
                assert 200 <= reply.code <= 559
                assert "\n" not in reply.text
                assert "\r" not in reply.text
            position += size
    except PeerProtocolError:
        pass


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    code = draw(CODES)
    lines = draw(st.lists(LINE_TEXT.map(str.strip), min_size=1, max_size=5))
    return Reply(code, tuple(lines))


def wire(reply: Reply) -> bytes:
    out = b""
    for index, line in enumerate(reply.lines):
        separator = " " if index == len(reply.lines) - 1 else "-"
        out += f"{reply.code}{separator}{line}".rstrip().encode() + b"\r\n"
    return out


@given(st.lists(replies(), min_size=1, max_size=5), st.integers(1, 7))
def test_generated_replies_come_back_whatever_the_chunking(
        sent: list[Reply], chunk: int) -> None:
    data = b"".join(wire(r) for r in sent)
    parser = ReplyParser()
    got = [r for i in range(0, len(data), chunk) for r in parser.feed(data[i:i + chunk])]
    assert [(r.code, r.text) for r in got] == [(r.code, r.text) for r in sent]
    assert parser.pending == 0


def unstuff(payload: bytes) -> bytes:
    """What a receiving server makes of a DATA payload (RFC 5321 4.5.2)."""
    assert payload.endswith(b".\r\n")
    lines = payload[:-3].split(b"\r\n")
    assert lines[-1] == b""
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n"
                    for line in lines[:-1])


@given(st.binary(max_size=3000))
def test_data_payload_is_clean_and_round_trips(message: bytes) -> None:
    payload = data_payload(message)
    # only CRLF line ends, and no line that is a lone dot before the terminator
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", payload) is None
    assert b"\r\n.\r\n" not in payload[:-3]
    assert not payload[:-3].startswith(b".\r\n")
    assert unstuff(payload) == crlf_message(message)


@given(st.text(max_size=500))
def test_policy_parser_only_raises_policy_error(text: str) -> None:
    with contextlib.suppress(PolicyError):
        parse_policy(text)


@given(st.lists(st.text(max_size=80), max_size=4))
def test_txt_parser_only_raises_policy_error(records: list[str]) -> None:
    try:
        policy_id = parse_txt(records)
    except PolicyError:
        return
    assert policy_id.isascii()
    assert policy_id.isalnum()
    assert len(policy_id) <= 32


@given(st.binary(max_size=600))
def test_http_reader_only_raises_fetch_error(raw: bytes) -> None:
    with contextlib.suppress(FetchError):
        parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + raw)


NAMES = st.sampled_from(["a.test.", "B.test.", "c.test", ".", "d.TEST.", "e.test."])


@given(st.lists(st.tuples(st.integers(0, 65535), NAMES), max_size=12), st.randoms())
def test_mx_order_is_a_sorted_permutation_of_the_real_hosts(
        records: list[tuple[int, str]], rng: random.Random) -> None:
    hosts = order_mx(records, rng)
    preferences = [h.preference for h in hosts]
    assert preferences == sorted(preferences)
    names = [h.name for h in hosts]
    assert len(names) == len(set(names))
    assert set(names) == {n.rstrip(".").lower() for _, n in records if n.rstrip(".")}
    for host in hosts:
        assert host.preference == min(p for p, n in records
                                      if n.rstrip(".").lower() == host.name)
