"""Fuzz the header blocks the store caches for SEARCH: they must be exactly what FETCH
BODY[HEADER] gives (the IMAP MIME parser is the oracle), from a message file read whole or
in a prefix, with any line ends."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.imap.mime import parse_message
from appliance.storage.maildir import cache
from appliance.storage.maildir import flags as names

LINES = st.lists(st.sampled_from([b"Subject: x", b"", b" folded", b"\r", b"a: b\r", b"\r\r",
                                  b"X-8bit: \xff\xfe", b"--b", b"body"]), max_size=12)
ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])
MANY = settings(max_examples=1000, deadline=None)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(LINES)
    return b"".join(line + draw(ENDS) for line in lines) + draw(st.binary(max_size=8))


def oracle(data: bytes) -> bytes:
    return parse_message(names.to_crlf(data)).header


@MANY
@given(st.one_of(messages(), st.binary(max_size=200)))
@example(b"\n")
@example(b"\r\n\r\n")
@example(b"a\r\r\n\r\nb")
@example(b"Subject: x\r")
def test_header_block_is_body_header(data: bytes) -> None:
    found = cache.header_block(data)
    expected = oracle(data)
    if found is None:
        assert expected == names.to_crlf(data)      # no empty line: all of it is header
    else:
        assert found == expected


@settings(max_examples=200, deadline=None)
@given(messages(), st.integers(min_value=0, max_value=cache.HEADER_PREFIX + 50))
def test_read_header_across_the_prefix_boundary(data: bytes, pad: int) -> None:
    """A long first field moves the empty line around the end of the first read."""
    whole = b"X-Pad: " + b"p" * pad + b"\n" + data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "message"
        path.write_bytes(whole)
        assert cache.read_header(str(path)) == oracle(whole)
