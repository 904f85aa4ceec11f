"""The sans-IO POP3 core: lines in, replies and actions out, results fed back as data."""

from __future__ import annotations

import pytest

from appliance.pop3 import replies
from appliance.pop3.actions import (
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
    StartTls,
)
from appliance.pop3.context import SessionConfig, Step
from appliance.pop3.core import Pop3Session, UsageError
from appliance.pop3.receiver import TOO_LONG, LineReceiver
from appliance.pop3.state import Limits, State
from appliance.pop3.wire import dot_stuffed, top
from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta

MESSAGES = {7: b"Subject: one\r\n\r\nbody\r\n.dot line\r\n", 9: b"Subject: two\r\n\r\nb\r\n"}
SNAPSHOT = FolderSnapshot("INBOX", uidvalidity=0x5F00AB, uidnext=10, highest_modseq=3,
                          messages=tuple(MessageMeta(uid, frozenset(), 1, 0.0, len(data))
                                         for uid, data in MESSAGES.items()))


def _text(step: Step) -> list[str]:
    return b"".join(step.chunks()).decode().split("\r\n")[:-1]


def _line(session: Pop3Session, line: str | bytes) -> Step:
    session.feed(line if isinstance(line, bytes) else line.encode() + b"\r\n")
    step = session.next_step()
    assert step is not None
    return step


def logged_in(config: SessionConfig | None = None) -> Pop3Session:
    session = Pop3Session(config or SessionConfig(tls=True))
    step = _line(session, "USER alice@example.test")
    assert _text(step) == [replies.USER_OK]
    step = _line(session, "PASS correct horse battery")
    assert step.action == Login("alice@example.test", "correct horse battery", "USER")
    step = session.resume(LoginAnswer(LoginStatus.ACCEPTED, "alice@example.test"))
    assert step.action == OpenMaildrop("alice@example.test")
    step = session.resume(MaildropAnswer(SNAPSHOT))
    assert _text(step) == ["+OK Logged in, 2 messages (52 octets)"]
    assert session.state is State.TRANSACTION
    return session


def test_greeting_and_capa_before_tls() -> None:
    session = Pop3Session(SessionConfig())
    assert _text(session.greeting()) == [replies.GREETING]
    lines = _text(_line(session, "CAPA"))
    assert lines[0] == replies.CAPA_FOLLOWS
    assert lines[-1] == "."
    assert "STLS" in lines
    assert "USER" not in lines
    assert "SASL PLAIN" not in lines


def test_no_password_before_tls_then_stls_clears_pipelined_plaintext() -> None:
    session = Pop3Session(SessionConfig())
    assert _text(_line(session, "USER alice@example.test")) == [replies.TLS_REQUIRED]
    session.feed(b"STLS\r\nUSER injected@example.test\r\n")
    step = session.next_step()
    assert step is not None
    assert step.action == StartTls()
    with pytest.raises(UsageError):
        session.next_step()
    session.tls_started()
    assert session.next_step() is None          # the injected line was dropped
    assert _text(_line(session, "STLS")) == [replies.TLS_ALREADY_ACTIVE]
    assert "USER" in _text(_line(session, "CAPA"))


def test_dev_mode_loopback_allows_plaintext_login() -> None:
    session = Pop3Session(SessionConfig(plaintext_login=True))
    assert _text(_line(session, "USER a@example.test")) == [replies.USER_OK]


def test_transaction_commands() -> None:
    session = logged_in()
    assert _text(_line(session, "STAT")) == ["+OK 2 52"]
    assert _text(_line(session, "LIST")) == ["+OK 2 messages (52 octets)", "1 33", "2 19", "."]
    assert _text(_line(session, "list 2")) == ["+OK 2 19"]
    assert _text(_line(session, "UIDL 1")) == ["+OK 1 00000007005F00AB"]
    step = _line(session, "RETR 1")
    assert step.action == ReadMessage(7)
    step = session.resume(MessageAnswer(MESSAGES[7]))
    assert b"".join(step.chunks()) == (
        b"+OK 33 octets\r\nSubject: one\r\n\r\nbody\r\n..dot line\r\n.\r\n")
    assert _line(session, "TOP 2 0").action == ReadMessage(9)
    step = session.resume(MessageAnswer(MESSAGES[9]))
    assert b"".join(step.chunks()) == b"+OK Top of message follows\r\nSubject: two\r\n\r\n.\r\n"
    assert _text(_line(session, "DELE 1")) == ["+OK Message 1 deleted"]
    assert _text(_line(session, "DELE 1")) == ["-ERR Message 1 already deleted"]
    assert _text(_line(session, "RETR 1")) == [replies.NO_SUCH_MESSAGE]
    assert _text(_line(session, "STAT")) == ["+OK 1 19"]
    assert _text(_line(session, "RSET")) == ["+OK 2 messages (52 octets)"]
    assert _text(_line(session, "DELE 2")) == ["+OK Message 2 deleted"]
    step = _line(session, "QUIT")
    assert step.action == RemoveMessages((9,))
    step = session.resume(RemoveAnswer(ok=True))
    assert _text(step) == ["+OK Logging out, 1 messages left"]
    assert step.close


def test_quit_without_deletions_and_failed_update() -> None:
    session = logged_in()
    step = _line(session, "QUIT")
    assert step.action is None
    assert step.close
    session = logged_in()
    _line(session, "DELE 2")
    assert _line(session, "QUIT").action == RemoveMessages((9,))
    step = session.resume(RemoveAnswer(ok=False))
    assert _text(step) == [replies.UPDATE_FAILED]


def test_in_use_and_failed_logins_close_after_the_limit() -> None:
    session = Pop3Session(SessionConfig(tls=True, limits=Limits(max_login_failures=2)))
    _line(session, "AUTH PLAIN AGFAZXhhbXBsZS50ZXN0AHB3")
    step = session.resume(LoginAnswer(LoginStatus.ACCEPTED, "a@example.test"))
    step = session.resume(MaildropAnswer(problem=MaildropProblem.IN_USE))
    assert _text(step) == [replies.IN_USE]
    assert session.state is State.AUTHORIZATION
    _line(session, "USER a@example.test")
    _line(session, "PASS wrong")
    assert _text(session.resume(LoginAnswer(LoginStatus.REJECTED))) == [replies.AUTH_FAILED]
    _line(session, "AUTH PLAIN")
    step = _line(session, "AGFAZXhhbXBsZS50ZXN0AHB3")
    assert step.action == Login("a@example.test", "pw", "PLAIN")
    step = session.resume(LoginAnswer(LoginStatus.LOCKED))
    assert _text(step) == [replies.AUTH_LOCKED]
    assert step.close


def test_auth_forms() -> None:
    session = Pop3Session(SessionConfig(tls=True))
    assert _text(_line(session, "AUTH")) == [replies.MECHANISMS_FOLLOW, "PLAIN", "."]
    assert _text(_line(session, "AUTH CRAM-MD5")) == [replies.UNKNOWN_MECHANISM]
    assert _text(_line(session, "AUTH PLAIN")) == [replies.SASL_CONTINUE]
    assert _text(_line(session, "*")) == [replies.AUTH_CANCELLED]
    assert _text(_line(session, "AUTH PLAIN !!!")) == [replies.AUTH_MALFORMED]
    _line(session, "AUTH PLAIN")
    assert _text(_line(session, b"\xff\xfe\r\n")) == [replies.AUTH_MALFORMED]


def test_bad_commands_close_the_session() -> None:
    session = Pop3Session(SessionConfig(limits=Limits(max_bad_commands=3)))
    assert _text(_line(session, "HELO")) == [replies.UNKNOWN_COMMAND]
    assert _text(_line(session, "STAT")) == [replies.WRONG_STATE]
    step = _line(session, b"\x00\x01\x02\r\n")
    assert _text(step) == [replies.UNKNOWN_COMMAND, replies.TOO_MANY_BAD_COMMANDS]
    assert step.close
    assert session.state is State.CLOSED
    session.feed(b"NOOP\r\n")
    assert session.next_step() is None


def test_long_line_costs_one_error_and_keeps_framing() -> None:
    session = Pop3Session(SessionConfig(tls=True))
    session.feed(b"USER " + b"x" * 300 + b"\r\nCAPA\r\n")
    step = session.next_step()
    assert step is not None
    assert _text(step) == [replies.LINE_TOO_LONG]
    step = session.next_step()
    assert step is not None
    assert _text(step)[0] == replies.CAPA_FOLLOWS


def test_receiver_limits_and_splits() -> None:
    receiver = LineReceiver()
    receiver.feed(b"A" * 253)
    assert receiver.next_line(255) is None
    receiver.feed(b"\r\n")
    assert receiver.next_line(255) == b"A" * 253           # 255 octets with CRLF: fits
    receiver.feed(b"B" * 254 + b"\r\n")
    assert receiver.next_line(255) is TOO_LONG
    receiver.feed(b"C" * 300)
    assert receiver.next_line(255) is TOO_LONG
    receiver.feed(b"C" * 300 + b"\nNOOP\n")
    assert receiver.next_line(255) == b"NOOP"


def test_dot_stuffing_and_top() -> None:
    assert dot_stuffed(b".a\r\nb\r\n..c") == b"..a\r\nb\r\n...c\r\n.\r\n"
    assert dot_stuffed(b"") == b".\r\n"
    message = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert top(message, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top(message, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"
    assert top(message, 9) == message
    assert top(b"A: 1\r\n", 3) == b"A: 1\r\n"
    assert top(b"\r\nbody\r\n", 0) == b"\r\n"


def test_misuse_is_a_usage_error() -> None:
    session = Pop3Session(SessionConfig())
    with pytest.raises(UsageError):
        session.resume(RemoveAnswer(ok=True))
    with pytest.raises(UsageError):
        session.tls_started()


@pytest.mark.parametrize(("problem", "line"), [
    (MaildropProblem.IN_USE, replies.IN_USE),
    (MaildropProblem.TEMPORARY, replies.MAILDROP_TEMPORARY),
    (MaildropProblem.PERMANENT, replies.MAILDROP_PERMANENT),
])
def test_maildrop_problems_keep_the_session_in_authorization(problem: MaildropProblem,
                                                             line: str) -> None:
    session = Pop3Session(SessionConfig(tls=True))
    _line(session, "AUTH PLAIN AGFAZXhhbXBsZS50ZXN0AHB3")
    session.resume(LoginAnswer(LoginStatus.ACCEPTED, "a@example.test"))
    assert _text(session.resume(MaildropAnswer(problem=problem))) == [line]
    assert session.state is State.AUTHORIZATION
    assert not session.authenticated


def test_unavailable_guard_is_temporary_and_not_a_failure() -> None:
    session = Pop3Session(SessionConfig(tls=True, limits=Limits(max_login_failures=1)))
    _line(session, "USER a@example.test")
    _line(session, "PASS pw")
    step = session.resume(LoginAnswer(LoginStatus.UNAVAILABLE))
    assert _text(step) == [replies.AUTH_TEMPORARY]
    assert not step.close


@pytest.mark.parametrize(("answer", "line"), [
    (MessageAnswer(gone=True), replies.MESSAGE_GONE),
    (MessageAnswer(), replies.READ_FAILED),
])
def test_unreadable_messages(answer: MessageAnswer, line: str) -> None:
    session = logged_in()
    _line(session, "RETR 2")
    assert _text(session.resume(answer)) == [line]
    assert _text(_line(session, "NOOP")) == [replies.OK]
