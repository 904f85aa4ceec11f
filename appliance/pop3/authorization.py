"""The AUTHORIZATION state: CAPA, STLS, USER/PASS, AUTH PLAIN, and what follows a login.

RFC 1939 7 (USER, PASS), RFC 2595 4 (STLS), RFC 5034 4 (AUTH, with an initial response or
a "+ " continuation; "*" cancels). Passwords go out as a `Login` action to the one login
guard; an accepted login is followed by `OpenMaildrop` (the exclusive lock and a snapshot
of INBOX), and only then does the session enter TRANSACTION.
"""

from __future__ import annotations

from appliance.auth import sasl
from appliance.pop3 import replies, wire
from appliance.pop3.actions import (
    Login,
    LoginAnswer,
    LoginStatus,
    MaildropAnswer,
    MaildropProblem,
    OpenMaildrop,
    Result,
    StartTls,
)
from appliance.pop3.context import SessionData, Step, bad, reply
from appliance.pop3.maildrop import Maildrop
from appliance.pop3.state import State
from appliance.pop3.wire import Command

_LOGIN_REPLIES = {
    LoginStatus.REJECTED: replies.AUTH_FAILED,
    LoginStatus.LOCKED: replies.AUTH_LOCKED,
    LoginStatus.UNAVAILABLE: replies.AUTH_TEMPORARY,
}
_MAILDROP_REPLIES = {
    MaildropProblem.IN_USE: replies.IN_USE,
    MaildropProblem.TEMPORARY: replies.MAILDROP_TEMPORARY,
    MaildropProblem.PERMANENT: replies.MAILDROP_PERMANENT,
}


def capa(data: SessionData, command: Command) -> Step:
    """RFC 2449 5: the capability list (in every state)."""
    return Step(wire.multiline(replies.CAPA_FOLLOWS, data.capabilities()))


def stls(data: SessionData, command: Command) -> Step:
    """RFC 2595 4: start TLS; only once, and only before login (the state table)."""
    if data.tls:
        return bad(replies.TLS_ALREADY_ACTIVE)
    if command.argument:
        return bad(replies.SYNTAX_ERROR)
    data.user = None       # nothing said in plaintext carries over into TLS
    return Step(wire.status(replies.STLS_BEGIN), action=StartTls())


def user(data: SessionData, command: Command) -> Step:
    """RFC 1939 7: remember the name; the answer never says whether it exists."""
    if not data.login_allowed:
        return bad(replies.TLS_REQUIRED)
    if not command.argument.strip():
        return bad(replies.SYNTAX_ERROR)
    data.user = command.argument.strip()
    return reply(replies.USER_OK)


def pass_(data: SessionData, command: Command) -> Step:
    """RFC 1939 7: the password is the whole argument, spaces included."""
    if not data.login_allowed:
        return bad(replies.TLS_REQUIRED)
    if data.user is None:
        return bad(replies.USER_FIRST)
    if not command.argument:
        return bad(replies.SYNTAX_ERROR)
    username, data.user = data.user, None
    return _login(Login(username, command.argument, "USER"))


def auth(data: SessionData, command: Command) -> Step:
    """RFC 5034 4: AUTH PLAIN [initial-response]; AUTH alone lists the mechanisms."""
    params = command.params
    if not data.login_allowed:
        return bad(replies.TLS_REQUIRED)
    if not params:
        return Step(wire.multiline(replies.MECHANISMS_FOLLOW, list(replies.MECHANISMS)))
    if params[0].upper() not in replies.MECHANISMS:
        return bad(replies.UNKNOWN_MECHANISM)
    if len(params) > 2:
        return bad(replies.SYNTAX_ERROR)
    if len(params) == 2:
        return _plain(data, params[1])
    data.state = State.SASL
    return reply(replies.SASL_CONTINUE)


def sasl_response(data: SessionData, line: bytes) -> Step:
    """The client's answer to "+ ": base64 of the PLAIN message, or "*" to cancel."""
    data.state = State.AUTHORIZATION
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return bad(replies.AUTH_MALFORMED)
    if text.strip() == sasl.CANCEL:
        return reply(replies.AUTH_CANCELLED)        # RFC 5034 4: "-ERR" after "*"
    return _plain(data, text)


def sasl_too_long(data: SessionData) -> Step:
    data.state = State.AUTHORIZATION
    return bad(replies.AUTH_MALFORMED)


def _plain(data: SessionData, response: str) -> Step:
    try:
        credentials = sasl.parse_plain(sasl.decode_response(response))
    except sasl.SaslError:
        return bad(replies.AUTH_MALFORMED)
    return _login(Login(credentials.username, credentials.password, "PLAIN"))


def _login(action: Login) -> Step:
    return Step(action=action, then=after_login)


def after_login(data: SessionData, result: Result) -> Step:
    """The guard's answer: open the maildrop, or refuse (and close after too many)."""
    assert isinstance(result, LoginAnswer)
    if result.status is LoginStatus.ACCEPTED and result.account is not None:
        data.account = result.account
        return Step(action=OpenMaildrop(result.account), then=after_open)
    if result.status is not LoginStatus.UNAVAILABLE:
        data.login_failures += 1
    step = reply(_LOGIN_REPLIES.get(result.status, replies.AUTH_FAILED))
    if data.login_failures >= data.config.limits.max_login_failures:
        data.state = State.CLOSED
        return Step(step.output, close=True)
    return step


def after_open(data: SessionData, result: Result) -> Step:
    """The maildrop is locked and numbered: TRANSACTION (RFC 1939 4), or the refusal."""
    assert isinstance(result, MaildropAnswer)
    if result.snapshot is None:
        data.account = None
        return reply(_MAILDROP_REPLIES[result.problem or MaildropProblem.TEMPORARY])
    data.maildrop = Maildrop.from_snapshot(result.snapshot)
    data.state = State.TRANSACTION
    return reply(replies.LOGGED_IN, count=data.maildrop.count(), size=data.maildrop.size())
