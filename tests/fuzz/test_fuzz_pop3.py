"""Fuzz the POP3 core: any command stream, in any split, never crashes it; every line gets a
well-formed reply until the session closes; multi-line bodies cannot end early."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.pop3.actions import (
    Action,
    Login,
    LoginAnswer,
    LoginStatus,
    MaildropAnswer,
    MaildropProblem,
    MessageAnswer,
    OpenMaildrop,
    ReadMessage,
    RemoveAnswer,
    RemoveMessages,
    Result,
    StartTls,
)
from appliance.pop3.context import SessionConfig, Step
from appliance.pop3.core import Pop3Session
from appliance.pop3.receiver import TOO_LONG, LineReceiver
from appliance.pop3.state import Limits, State
from appliance.pop3.wire import (
    CommandSyntaxError,
    dot_stuffed,
    dot_stuffed_chunks,
    parse_command,
    top,
)
from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta

KEYWORDS = ["USER", "PASS", "AUTH", "STLS", "CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP",
            "RSET", "TOP", "UIDL", "QUIT", "APOP", "XTND", "", "user", "Retr", "*"]
ARGUMENTS = st.lists(st.sampled_from(["1", "2", "0", "-1", "99999999999", "a@example.test",
                                      "PLAIN", "AGEAYgBj", "=", "*", "x" * 300, "\x00", "é",
                                      "2 0", "1 5", "\t"]), max_size=3)
COMMAND_LINE = st.builds(lambda k, a: " ".join([k, *a]).encode("utf-8", "surrogatepass"),
                         st.sampled_from(KEYWORDS), ARGUMENTS)
LINE = COMMAND_LINE | st.binary(max_size=300).filter(lambda b: b"\n" not in b)
CONTENT = st.binary(max_size=400).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n"))
SNAPSHOT = FolderSnapshot("INBOX", 7, 4, 1, tuple(
    MessageMeta(uid, frozenset(), 1, 0.0, 40 + uid) for uid in (1, 2, 3)))


def _result(action: Action, data: st.DataObject) -> Result:
    """A result the driver could give for `action` (drawn, so every branch is reached)."""
    if isinstance(action, Login):
        status = data.draw(st.sampled_from(list(LoginStatus)))
        return LoginAnswer(status, "a@example.test" if status is LoginStatus.ACCEPTED else None)
    if isinstance(action, OpenMaildrop):
        problem = data.draw(st.none() | st.sampled_from(list(MaildropProblem)))
        return MaildropAnswer(SNAPSHOT if problem is None else None, problem)
    if isinstance(action, ReadMessage):
        return data.draw(st.builds(MessageAnswer, st.none() | CONTENT, st.booleans()))
    assert isinstance(action, RemoveMessages)
    return RemoveAnswer(data.draw(st.booleans()))


def _play(session: Pop3Session, step: Step, data: st.DataObject) -> list[Step]:
    """Run a step and the steps its actions lead to."""
    steps = [step]
    while step.action is not None:
        if isinstance(step.action, StartTls):
            session.tls_started()
            break
        step = session.resume(_result(step.action, data))
        steps.append(step)
    return steps


def _closed(session: Pop3Session) -> bool:
    return session.state is State.CLOSED


def _well_formed(output: bytes) -> bool:
    return output.startswith((b"+OK", b"-ERR", b"+ ")) and output.endswith(b"\r\n")


@settings(max_examples=300)
@given(st.lists(LINE, max_size=30), st.booleans(), st.booleans(), st.data())
@example([b"AUTH PLAIN", b"AGEAYgBj", b"STAT", b"RETR 1", b"DELE 1", b"QUIT"], True, False,
         None)
def test_every_line_gets_a_reply(lines: list[bytes], tls: bool, dev: bool,
                                 data: st.DataObject | None) -> None:
    session = Pop3Session(SessionConfig(tls=tls, plaintext_login=dev, limits=Limits()))
    for line in lines:
        if _closed(session):
            break
        session.feed(line + b"\r\n")
        step = session.next_step()
        assert step is not None, f"no reply to {line!r}"
        if data is None:
            if step.action is not None:
                break
            steps = [step]
        else:
            steps = _play(session, step, data)
        replies = [b"".join(s.chunks()) for s in steps if s.output]
        assert replies, f"no reply to {line!r}"
        assert all(_well_formed(output) for output in replies), replies
        assert session.next_step() is None     # one line fed, one line answered


@settings(max_examples=200)
@given(st.lists(LINE, max_size=20), st.lists(st.integers(1, 50), min_size=1), st.data())
def test_any_split_never_crashes(lines: list[bytes], cuts: list[int],
                                 data: st.DataObject) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    session = Pop3Session(SessionConfig(tls=True, limits=Limits(max_bad_commands=5)))
    position = 0
    for size in cuts * (len(stream) // max(sum(cuts), 1) + 1):
        if position >= len(stream) or session.state is State.CLOSED:
            break
        session.feed(stream[position:position + size])
        position += size
        while (step := session.next_step()) is not None:
            for played in _play(session, step, data):
                assert not played.output or _well_formed(b"".join(played.chunks()))


@given(st.binary(max_size=400))
def test_parse_command_only_raises_its_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except CommandSyntaxError:
        return
    assert command.keyword == command.keyword.upper()


@given(CONTENT)
def test_dot_stuffed_body_ends_only_at_its_terminator(content: bytes) -> None:
    lines = dot_stuffed(content).split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    assert all(line != b"." for line in lines[:-2])
    unstuffed = b"".join(line[1:] + b"\r\n" if line.startswith(b".") else line + b"\r\n"
                         for line in lines[:-2])
    assert unstuffed == (content if content.endswith(b"\n") or not content else
                         content + b"\r\n")


@given(CONTENT, st.integers(1, 40))
def test_chunks_stuff_like_the_whole(content: bytes, size: int) -> None:
    assert b"".join(dot_stuffed_chunks(content, size)) == dot_stuffed(content)


@given(CONTENT, st.integers(0, 20))
def test_top_is_a_prefix(content: bytes, lines: int) -> None:
    assert content.startswith(top(content, lines))


@given(st.lists(st.binary(max_size=80), max_size=20), st.integers(3, 100))
def test_receiver_never_hands_out_a_line_over_the_limit(chunks: list[bytes], limit: int) -> None:
    receiver = LineReceiver()
    for chunk in chunks:
        receiver.feed(chunk)
        while (line := receiver.next_line(limit)) is not None:
            assert line is TOO_LONG or (isinstance(line, bytes) and len(line) + 1 <= limit)
