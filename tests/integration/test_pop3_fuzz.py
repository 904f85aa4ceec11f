"""Fuzzing the live POP3 listener over real sockets with hypothesis: random command lines and
raw bytes, logged in and not. Every line gets exactly one status line (`+OK`, `-ERR`, or
"+ " inside AUTH) before anything else, multi-line answers end with ".", and the engine
logs no internal error. STLS and QUIT change what follows, so the fuzzer sends them with an
X in front; each example ends with RSET and QUIT, so the maildrop stays as it was."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.pop3 import replies
from harness.engine import EngineProcess
from harness.pop3 import PASSWORD, put_message, sample, wire
from harness.smtp_wire import SMTPWire

ACCOUNT = "fuzz@example.test"
MX_SETTINGS = {"pop3__max_connections_per_ip": 10_000, "pop3__max_bad_commands": 1000,
               "pop3__max_login_failures": 100, "auth__failure_delay_ms": 0,
               "auth__max_failures": 1000, "auth__max_failures_per_ip": 100_000}
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
WORDS = st.sampled_from(["USER", "PASS", "AUTH", "CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP",
                         "RSET", "TOP", "UIDL", "XSTLS", "XQUIT", "APOP", "list", "Top"])
ARGS = st.lists(st.sampled_from(["1", "2", "3", "0", "-1", "x", "PLAIN", "*", "=", "é",
                                 "99999999999", "1 0", "2 3"]), max_size=3)
LINE = (st.builds(lambda w, a: " ".join([w, *a]).encode(), WORDS, ARGS)
        | st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")))


@pytest.fixture(scope="module")
def fuzz_account(mx: EngineProcess) -> str:
    mx.add_account(ACCOUNT)
    for number in (1, 2, 3):
        put_message(mx.maildir(ACCOUNT), sample(number, extra="X-Dot: yes\r\n"))
    return ACCOUNT


def _multiline(line: bytes, status: str) -> bool:
    """Whether the answer to `line` goes on after its status line (RFC 1939 3)."""
    words = line.decode("utf-8", "replace").split(" ")
    keyword, arguments = words[0].upper(), [w for w in words[1:] if w]
    if not status.startswith("+OK"):
        return False
    if keyword in ("LIST", "UIDL", "AUTH"):
        return not arguments
    return keyword in ("CAPA", "RETR", "TOP")


def _answer(connection: SMTPWire, line: bytes, in_sasl: bool) -> str:
    status = connection.read_line(timeout=10)
    assert status is not None, f"closed without a reply to {line!r}"
    assert status.startswith(("+OK", "-ERR", "+ ")), (line, status)
    if not in_sasl and _multiline(line, status):
        while (more := connection.read_line(timeout=10)) != ".":
            assert more is not None, f"closed inside the answer to {line!r}"
    return status


@FUZZ
@given(lines=st.lists(LINE, min_size=1, max_size=15), log_in=st.booleans())
def test_every_line_gets_one_answer(mx: EngineProcess, fuzz_account: str,
                                    lines: list[bytes], log_in: bool) -> None:
    with wire(mx, tls=True) as connection:
        if log_in:
            connection.send_line(f"USER {fuzz_account}")
            connection.send_line(f"PASS {PASSWORD}")
            assert connection.read_line() == replies.USER_OK
            logged_in = connection.read_line()
            assert logged_in == replies.LOGGED_IN.format(count=3, size=3 * len(
                sample(1, extra="X-Dot: yes\r\n"))), logged_in
        in_sasl = False
        for line in lines:
            connection.send(line + b"\r\n")
            in_sasl = _answer(connection, line, in_sasl) == replies.SASL_CONTINUE
        if in_sasl:
            connection.send_line("*")
            connection.read_line()
        connection.send_line("RSET")
        connection.read_line()
        connection.send_line("QUIT")
        while connection.read_line() is not None:     # the close releases the lock first
            pass
    assert "pop3.internal_error" not in mx.log_text()


def test_listener_still_serves_after_the_fuzz(mx: EngineProcess, fuzz_account: str) -> None:
    with wire(mx, tls=True) as connection:
        connection.send_line("CAPA")
        assert connection.read_line() == replies.CAPA_FOLLOWS
    assert "pop3.internal_error" not in mx.log_text()
