"""Hypothesis-generated SMTP sessions against the live MX: commands, DATA and BDAT with hostile
bodies, pipelining, and hang-ups at any point.

Whatever comes, the engine must not crash or log an internal error, and a message file in a
Maildir's new/ is always a whole message: every message the generator sends ends with the
line END-OF-MESSAGE, so a stored file without it would be a half-written or cut message.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.engine import EngineProcess
from harness.transactions import maildir_files

MX_SETTINGS = {"limits__max_message_size": 4096, "limits__max_line_length": 600,
               "limits__max_connections_per_ip": 10_000}
RECIPIENTS = ("stream1@example.test", "stream2@example.test")
LAST_LINE = b"END-OF-MESSAGE\r\n"
TERMINATOR = b"\r\n.\r\n"
STREAMS = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Hangup:
    """Close the connection here, without QUIT (maybe in the middle of a message)."""


COMMANDS = st.sampled_from([
    b"EHLO fuzz.example.org", b"HELO fuzz", b"MAIL FROM:<a@example.org>", b"MAIL FROM:<>",
    f"RCPT TO:<{RECIPIENTS[0]}>".encode(), f"RCPT TO:<{RECIPIENTS[1]}>".encode(),
    b"RCPT TO:<nobody@example.test>", b"RSET", b"NOOP", b"VRFY x", b"BDAT", b"BDAT x",
    b"DATA x", b"MAIL FROM:<a@", b"\x00", b"", b"XYZZY"]).map(lambda line: line + b"\r\n")
BODY_PARTS = st.sampled_from([b"Subject: s\r\n", b"\r\n", b"text\r\n", b".dot\r\n", b"..\r\n",
                              b"\n", b"\r", b"\x00", b"\n.\n", b"\r\n.\r", b"x" * 700,
                              b"y" * 300 + b"\r\n", b"\xff\xfe"])
BODIES = st.lists(BODY_PARTS, max_size=20).map(b"".join).filter(
    lambda body: TERMINATOR not in b"\r\n" + body + LAST_LINE[:-2])


@st.composite
def data_transfers(draw: st.DrawFn) -> bytes:
    """DATA, then a body that ends in LAST_LINE and the end of data (if the 354 came)."""
    return b"DATA\r\n" + draw(BODIES) + LAST_LINE + b".\r\n"


@st.composite
def bdat_transfers(draw: st.DrawFn) -> bytes:
    """Some BDAT chunks; a LAST chunk ends in LAST_LINE."""
    chunks = draw(st.lists(BODIES, max_size=3))
    last = draw(st.booleans())
    out = b"".join(b"BDAT %d\r\n" % len(chunk) + chunk for chunk in chunks)
    if last:
        final = draw(BODIES) + LAST_LINE
        out += b"BDAT %d LAST\r\n" % len(final) + final
    return out


# A whole transaction, so that many examples reach the body with a valid envelope.
TRANSACTIONS = st.builds(
    lambda rcpt, transfer: (b"EHLO fuzz.example.org\r\nMAIL FROM:<a@example.org>\r\n"
                            b"RCPT TO:<" + rcpt.encode() + b">\r\n" + transfer),
    st.sampled_from(RECIPIENTS), data_transfers() | bdat_transfers())
ACTIONS = st.lists(st.one_of(TRANSACTIONS, COMMANDS, data_transfers(), bdat_transfers(),
                             st.just(Hangup())), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def maildirs(mx: EngineProcess) -> list[Path]:
    return [mx.add_account(address) for address in RECIPIENTS]


def play(port: int, actions: list[bytes | Hangup], cut: int) -> None:
    """Send the actions (cut short `cut` octets into the stream at a Hangup), read replies."""
    stream, hangup = b"", False
    for action in actions:
        if isinstance(action, Hangup):
            stream, hangup = stream[:max(0, len(stream) - cut)], True
            break
        stream += action
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.recv(4096)                                   # the greeting
        sock.sendall(stream)
        if hangup:
            return
        sock.sendall(b"QUIT\r\n")                        # then read until the server closes
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if not sock.recv(65536):
                    break
            except (TimeoutError, ConnectionResetError):
                break


def assert_whole_messages(maildirs: list[Path]) -> None:
    for root in maildirs:
        found = maildir_files(root)
        for path in [*found["new"], *found["cur"]]:
            data = path.read_bytes().replace(b"\r\n", b"\n")
            assert data.endswith(LAST_LINE.replace(b"\r\n", b"\n")), (path, data[-200:])


@STREAMS
@given(actions=ACTIONS, cut=st.integers(0, 40))
def test_command_streams_never_crash_or_leave_partial_messages(
        mx: EngineProcess, maildirs: list[Path], actions: list[bytes | Hangup],
        cut: int) -> None:
    play(mx.smtp_port, actions, cut)
    assert mx.proc is not None
    assert mx.proc.poll() is None, "the engine died"
    assert_whole_messages(maildirs)


def test_after_the_streams_nothing_is_left_half_done(
        mx: EngineProcess, maildirs: list[Path]) -> None:
    """Runs after the generator (file order): no tmp/ leftovers, no internal errors."""
    time.sleep(0.5)
    for root in maildirs:
        assert maildir_files(root)["tmp"] == []
    assert_whole_messages(maildirs)
    assert sum(len(maildir_files(root)["new"]) for root in maildirs) >= 3, "too few stored"
    log = mx.log_text()
    assert "smtp.internal_error" not in log
    assert "Traceback" not in log
