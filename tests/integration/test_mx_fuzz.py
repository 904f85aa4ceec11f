"""Fuzzing the live MX over real sockets with hypothesis: random command lines and raw bytes.

For every line the server reads (it splits on LF, RFC 5321 2.3.8) there must be exactly one
well-formed reply: three digits and a space or hyphen on every line, one code throughout, an
RFC 3463 enhanced status code (we advertise ENHANCEDSTATUSCODES) except on HELO/EHLO replies,
never a 2xx or 3xx to a verb the server does not know, and never the temporary failure that
means an exception escaped. The engine must survive all of it without logging an internal
error. DATA, BDAT, QUIT and STARTTLS change what the following bytes mean, so the fuzzer
never sends them as a verb (it prefixes them with "X").
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import ENHANCED_CODE, ConnectionClosed, Reply, SMTPWire, greeted

MX_SETTINGS = {"limits__max_connections_per_ip": 10_000}
KNOWN_VERBS = {b"HELO", b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"QUIT", b"VRFY",
               b"EXPN", b"HELP", b"STARTTLS", b"AUTH", b"BDAT"}
MODE_CHANGING = {b"DATA", b"QUIT", b"STARTTLS", b"BDAT"}   # BDAT n: n octets that are no lines
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def verb(line: bytes) -> bytes:
    """The command verb as the server sees it (aiosmtpd: rstrip CR/LF, split at the space)."""
    return line.rstrip(b"\r\n").partition(b" ")[0].upper()


def defused(line: bytes) -> bytes:
    """`line` unless its verb changes the session's mode; then that verb with an X in front."""
    return b"X" + line if verb(line) in MODE_CHANGING else line


def one_line(data: bytes) -> bytes:
    return defused(data.replace(b"\n", b" "))


TEXTISH = st.one_of(st.binary(max_size=40), st.text(max_size=30).map(
    lambda text: text.encode("utf-8", "surrogatepass")))
ARGUMENTS = st.one_of(
    st.sampled_from([b"", b"FROM:<a@example.org>", b"TO:<alice@example.test>", b"<>",
                     b"FROM:<>", b"TO:<postmaster>", b"SIZE=12", b"BODY=8BITMIME",
                     b"SMTPUTF8", b"FROM:<a@example.org> SIZE=99999999999", b"PLAIN =",
                     b"LOGIN", b"FROM:<\"q\\\"\"@x>", b"TO:<@a,@b:c@d>"]),
    TEXTISH,
    st.text(string.printable, max_size=80).map(str.encode),
)
# MAIL, RCPT and VRFY with an address made of random parts: the address parsers' input.
ADDRESS_COMMANDS = st.tuples(
    st.sampled_from([b"MAIL FROM:", b"RCPT TO:", b"VRFY ", b"mail from: ", b"Rcpt To:"]),
    st.sampled_from([b"<", b""]),
    st.one_of(st.sampled_from([b"alice", b"a.b", b'"x y"', b"\xff", b"\x00", b""]), TEXTISH),
    st.sampled_from([b"@", b"", b"@@"]),
    st.one_of(st.sampled_from([b"example.test", b"example.org", b"[127.0.0.1]", b"\xfe.test",
                               b"xn--zz.test", b""]), TEXTISH),
    st.sampled_from([b">", b""]),
    st.sampled_from([b"", b" SIZE=1", b" BODY=7BIT", b" SMTPUTF8", b" X=\xff", b" ="]),
).map(lambda parts: b"".join(parts))
COMMAND_LINES = st.one_of(
    ADDRESS_COMMANDS,
    st.tuples(st.sampled_from(sorted(KNOWN_VERBS - MODE_CHANGING)),
              st.sampled_from([b" ", b"", b"  ", b"\t", b": "]), ARGUMENTS)
    .map(lambda parts: b"".join(parts)),
    st.tuples(st.sampled_from([b"helo", b"Ehlo", b"vrfy", b"help", b"noop"]),
              ARGUMENTS).map(lambda parts: b" ".join(parts)),
    st.binary(max_size=120),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(400, 3000).map(lambda n: b"NOOP " + b"a" * n),
).map(one_line)
# How far the session got before the fuzzed lines: nothing, EHLO, or EHLO and MAIL.
OPENINGS = st.sampled_from([(), (b"EHLO fuzz.example.org",),
                            (b"EHLO fuzz.example.org", b"MAIL FROM:<fuzz@example.org>")])


def check_reply(line: bytes, reply: Reply) -> None:
    """The rules every reply to a fuzzed `line` obeys (well-formedness is checked on read)."""
    command = verb(line)
    assert str(reply) != replies.TEMPORARY_FAILURE, f"internal error on {line!r}"
    if command not in KNOWN_VERBS:
        assert reply.code >= 400, f"{line!r} (unknown verb) got {reply}"
    if not (command in (b"HELO", b"EHLO") and reply.code == 250):
        for text in reply.lines:
            assert ENHANCED_CODE.match(text[4:]), f"no enhanced status code in {text!r}"
            assert text[4] == text[0], f"class of {text!r} differs from its code"


def converse(mx: EngineProcess, lines: list[bytes]) -> None:
    """Send each line, check its reply; stop where the server closes on purpose."""
    with greeted(mx.smtp_port, None, timeout=5) as wire:
        for line in lines:
            wire.send_line(line)
            if not expect_reply(wire, line):
                return


def expect_reply(wire: SMTPWire, line: bytes) -> bool:
    """Read and check the reply to `line`; False if the server closed the connection."""
    try:
        reply = wire.read_reply()
    except ConnectionClosed as closed:
        raise AssertionError(f"connection closed without a reply to {line!r}") from closed
    check_reply(line, reply)
    if reply.code in (421, 502) and reply.last.startswith(("421 ", "502 5.5.1 Too many")):
        assert wire.is_closed(), f"{reply} but the connection stayed open"
        return False
    return True


@FUZZ
@given(opening=OPENINGS, lines=st.lists(COMMAND_LINES, min_size=1, max_size=8))
def test_random_command_lines_get_well_formed_replies(
        mx: EngineProcess, opening: tuple[bytes, ...], lines: list[bytes]) -> None:
    converse(mx, [*opening, *lines])
    assert mx.proc is not None
    assert mx.proc.poll() is None


@FUZZ
@given(opening=OPENINGS, blob=st.binary(min_size=1, max_size=3000))
def test_random_bytes_get_one_reply_per_line(
        mx: EngineProcess, opening: tuple[bytes, ...], blob: bytes) -> None:
    """Arbitrary bytes in one write: the server sees lines where the LFs are."""
    lines = [*opening, *(defused(line) for line in (blob + b"\r\n").split(b"\n")[:-1])]
    with greeted(mx.smtp_port, None, timeout=5) as wire:
        wire.send(b"".join(line + b"\n" for line in lines))
        for line in lines:
            if not expect_reply(wire, line):
                break
    assert mx.proc is not None
    assert mx.proc.poll() is None


def test_engine_survived_without_internal_errors(mx: EngineProcess) -> None:
    """Runs after the fuzzers (file order): the engine serves, and logged no exception."""
    with greeted(mx.smtp_port) as wire:
        assert str(wire.command("NOOP")) == replies.OK
    log = mx.log_text()
    assert "smtp.internal_error" not in log
    assert "Traceback" not in log
