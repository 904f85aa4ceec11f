"""Fuzz the IMAP driver over a real socket: streams of valid commands, junk lines, literal
headers (synchronising, LITERAL+, oversized) and raw bytes, sent in random slices to the real
listeners. Whatever arrives, every line the server sends is a well-formed response (untagged,
continuation or tagged status), a final LOGOUT is answered unless the server said BYE, and the
server never logs an internal error."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.imap import ImapWire
from harness.imap_server import InProcessImap

_RESPONSE = re.compile(rb"(\* |\+ |[\x21-\x7e]+ (OK|NO|BAD)( |$))")
_FAILURES = ("imap.internal_error", "imap.command_failed")

VALID = st.sampled_from([
    b"NOOP", b"CAPABILITY", b"SELECT INBOX", b"EXAMINE Sent", b"FETCH 1:* (FLAGS UID)",
    b"UID FETCH 1:* BODY.PEEK[]", b"STORE 1 +FLAGS (\\Seen)", b"SEARCH ALL", b"EXPUNGE",
    b"APPEND INBOX {12+}\r\nSubject: x\r\n", b"APPEND INBOX {5}", b"LIST \"\" *",
    b"STATUS INBOX (MESSAGES)", b"CREATE Fuzz", b"DELETE Fuzz", b"CLOSE", b"UNSELECT",
    b"IDLE", b"DONE", b"AUTHENTICATE PLAIN", b"STARTTLS", b"ENABLE QRESYNC", b"ID NIL",
    b"COPY 1 Trash", b"MOVE 1:2 Archive", b"LOGIN a b", b"{999999999}", b"x {3+}\r\nabc",
])
JUNK = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" "))


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(st.one_of(VALID.map(lambda c: b"T " + c), VALID, JUNK),
                          max_size=25))
    data = b"".join(line + b"\r\n" for line in lines)
    cuts = sorted(draw(st.lists(st.integers(0, max(len(data), 1)), max_size=5)))
    return data, cuts


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() in _FAILURES:
            self.events.append(f"{record.getMessage()}: {record.exc_info}")


@pytest.fixture(scope="module")
def imap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessImap]:
    running = InProcessImap(tmp_path_factory.mktemp("fuzz") / "data", autologout=5.0)
    try:
        yield running
    finally:
        running.stop()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stream=streams())
def test_any_byte_stream_gets_well_formed_answers(imap: InProcessImap,
                                                 stream: tuple[bytes, list[int]]) -> None:
    data, cuts = stream
    failures = _Failures()
    logging.getLogger("mailstead").addHandler(failures)
    try:
        with imap.connect() as wire:
            start = 0
            for cut in [*cuts, len(data)]:
                wire.send(data[start:cut])
                start = max(start, cut)
            # End any literal, IDLE or SASL exchange the stream left open, then log out.
            wire.send(b"\r\n" + b"*\r\nDONE\r\nZZ LOGOUT\r\n")
            _read_to_end(wire)
    finally:
        logging.getLogger("mailstead").removeHandler(failures)
    assert failures.events == []


def _read_to_end(wire: ImapWire) -> None:
    """Every line until the server closes; each must be a response line."""
    while True:
        try:
            line = wire.read_line(timeout=10)
        except ConnectionError:
            return
        if line is None:
            return
        assert _RESPONSE.match(line), line[:200]


def test_connections_left_are_none(imap: InProcessImap) -> None:
    # Runs after the fuzz test in this module: every fuzzed connection was released.
    with imap.connect() as wire:
        assert wire.command("N", "NOOP")[-1].startswith(b"N OK")
    assert imap.config.tracker.live <= 1
