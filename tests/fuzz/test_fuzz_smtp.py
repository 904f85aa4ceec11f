"""Fuzz the SMTP reply translation and the trace headers built from client-chosen text."""

from __future__ import annotations

import email.parser
import email.policy
import re

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.smtp import replies
from appliance.smtp.policy import Trace, trace_headers

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)
HOSTILE = st.text(st.sampled_from("\r\n\t \x00\x7f:;()[]<>\\\"ab\udcffé\u2028\u0085"),
                  max_size=40)
ENHANCED = re.compile(r"(?P<code>[245]\d\d) (?P<cls>[245])\.\d{1,3}\.\d{1,3}(?: |$)")
# The prefixes translate knows, taken from its own table, with anything after them.
KNOWN = st.builds(lambda prefix, rest: prefix + rest,
                  st.sampled_from([prefix for prefix, _ in replies._AIOSMTPD_REPLIES]),
                  st.text(max_size=80))


@given(ANY_TEXT | KNOWN)
@example("")
@example("555 ")
@example("501 Syntax:")
def test_translate_is_total_and_idempotent(reply: str) -> None:
    translated = replies.translate(reply)
    assert isinstance(translated, str)
    assert replies.translate(translated) == translated
    assert translated.count("\n") <= reply.count("\n")
    assert translated.count("\r") <= reply.count("\r")


@given(KNOWN)
def test_known_replies_get_a_matching_enhanced_code(reply: str) -> None:
    match = ENHANCED.match(replies.translate(reply))
    assert match is not None
    assert match["code"][0] == match["cls"]


TRACES = st.builds(
    Trace,
    sender=st.sampled_from(["", "alice@example.org", "jörg@bücher.example"]),
    helo=ANY_TEXT | HOSTILE,
    client_ip=st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.7"]),
    hostname=st.just("mx.example.test"),
    protocol=st.sampled_from(["SMTP", "ESMTP", "ESMTPS"]),
    queue_id=st.from_regex(r"[A-Za-z0-9]{1,16}", fullmatch=True),
    recipient=st.none() | st.just("bob@example.test"),
    timestamp=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)


@given(TRACES)
@example(Trace("", "x\r\nBcc: victim@example.org", "192.0.2.1", "mx", "SMTP", "Q", None, 0.0))
@example(Trace("", "\r\n\r\nbody", "192.0.2.1", "mx", "SMTP", "Q", None, 0.0))
def test_trace_headers_are_a_valid_header_block(trace: Trace) -> None:
    block = trace_headers(trace)
    text = block.decode("utf-8")
    assert "\r" not in text
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    starts = [i for i, line in enumerate(lines) if not line.startswith("\t")]
    assert starts == [0, 1]
    assert lines[0] == f"Return-Path: <{trace.sender}>"
    assert lines[1].startswith("Received: from ")
    for line in lines[1:]:
        assert line.strip(), "an empty line would end the header section"
        assert not any(c in line for c in "\x00\x0b\x0c\x85\u2028\u2029")
    helo = lines[1][len("Received: from "):].rsplit(" ([", 1)[0]
    assert helo
    assert not any(c.isspace() for c in helo)
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        block + b"\nbody\n")
    assert list(parsed.keys()) == ["Return-Path", "Received"]
    assert parsed.get_content().strip() == "body"
