"""Fuzz the clamd client's parsers: any reply bytes give a `Scan` (never an exception) and a
result with a defined verdict; any address text parses or raises ValueError only; framing
round-trips any message at any chunk size."""

from __future__ import annotations

import struct

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.checks.clamav import COMMAND, frames, parse_address, parse_reply, scan_result
from appliance.checks.result import Verdict

REPLY_PARTS = st.sampled_from([b"stream", b": ", b"OK", b" FOUND", b" ERROR", b"\x00",
                               b"INSTREAM size limit exceeded.", b"\xff", b"Eicar"])
REPLIES = st.lists(REPLY_PARTS, max_size=8).map(b"".join) | st.binary(max_size=300)


@given(REPLIES, st.booleans())
@example(b"stream: \xff FOUND\x00", False)
def test_any_reply_gives_a_defined_result(raw: bytes, fail_open: bool) -> None:
    scan = parse_reply(raw)
    assert (scan.infected is None) or (scan.error is None)
    result = scan_result(scan, fail_open)
    if scan.infected is not None:
        assert result.verdict is Verdict.REJECT
    elif scan.error is not None:
        assert result.verdict is (Verdict.TAG if fail_open else Verdict.TEMPFAIL)
    else:
        line = raw.split(b"\x00")[0].decode("utf-8", "replace").strip()
        assert result.verdict is Verdict.ACCEPT
        assert line == "stream: OK"


@given(st.text(max_size=80))
@example("[::1]:3310")
@example("[]:1")
def test_addresses_parse_or_raise_value_error(text: str) -> None:
    try:
        address = parse_address(text)
    except ValueError:
        return
    assert address.path == text or (address.host and 0 < address.port < 65536)


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=700))
def test_framing_round_trips(message: bytes, chunk_size: int) -> None:
    stream = b"".join(frames(message, chunk_size))
    assert stream.startswith(COMMAND)
    assert stream.endswith(struct.pack(">I", 0))
    rest, body = stream[len(COMMAND):], b""
    while (length := struct.unpack(">I", rest[:4])[0]) != 0:
        assert 0 < length <= chunk_size
        body, rest = body + rest[4:4 + length], rest[4 + length:]
    assert body == message
    assert rest == struct.pack(">I", 0)
