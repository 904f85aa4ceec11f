"""The sans-IO POP3 session: bytes in, `Step`s (replies and actions) out.

In the manner of h11: the driver calls `feed` with what it received and `next_step` until
it returns None (more data needed); each `Step` holds bytes to send, maybe an action to
perform (whose result goes back through `resume` before anything else), and whether to
close. The state check happens once, from the table in `state.py`; handlers live in
`authorization.py` and `transaction.py`. Two kinds of error: a peer that misbehaves gets
its `-ERR` (and is cut off after `Limits.max_bad_commands`), a driver that misuses this
API gets `UsageError`.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.pop3 import authorization, replies, transaction, wire
from appliance.pop3.actions import Result, StartTls
from appliance.pop3.context import SessionConfig, SessionData, Step, bad
from appliance.pop3.receiver import TOO_LONG, LineReceiver
from appliance.pop3.state import COMMANDS, KNOWN_COMMANDS, State
from appliance.pop3.wire import Command, CommandSyntaxError

Handler = Callable[[SessionData, Command], Step]

HANDLERS: dict[str, Handler] = {
    "CAPA": authorization.capa, "STLS": authorization.stls, "USER": authorization.user,
    "PASS": authorization.pass_, "AUTH": authorization.auth,
    "STAT": transaction.stat, "LIST": transaction.list_, "RETR": transaction.retr,
    "DELE": transaction.dele, "NOOP": transaction.noop, "RSET": transaction.rset,
    "TOP": transaction.top, "UIDL": transaction.uidl, "QUIT": transaction.quit_,
}
assert set(HANDLERS) == KNOWN_COMMANDS


class UsageError(RuntimeError):
    """The driver called the session out of order (a bug in the driver, not the peer)."""


class Pop3Session:
    """One POP3 conversation, from greeting to close."""

    def __init__(self, config: SessionConfig) -> None:
        self.data = SessionData(config, tls=config.tls)
        self._receiver = LineReceiver()
        self._then: Callable[[SessionData, Result], Step] | None = None
        self._awaiting_tls = False

    @property
    def state(self) -> State:
        return self.data.state

    @property
    def authenticated(self) -> bool:
        return self.data.maildrop is not None

    @property
    def busy(self) -> bool:
        """An action is out with the driver."""
        return self._then is not None or self._awaiting_tls

    def greeting(self) -> Step:
        """RFC 1939 4: the greeting that opens the AUTHORIZATION state."""
        return Step(wire.status(replies.GREETING))

    def feed(self, data: bytes) -> None:
        """Bytes received from the client (any amount, any split)."""
        if self.data.state is not State.CLOSED:
            self._receiver.feed(data)

    def next_step(self) -> Step | None:
        """The reply to the next complete line, or None until more bytes are fed."""
        if self.busy:
            raise UsageError("resume() or tls_started() before the next line")
        state = self.data.state
        if state in (State.CLOSED, State.UPDATE):
            return None
        line = self._receiver.next_line(self.data.config.limits.line_limit(state))
        if line is None:
            return None
        if line is TOO_LONG:
            if state is State.SASL:
                return self._finish(authorization.sasl_too_long(self.data))
            return self._finish(bad(replies.LINE_TOO_LONG))
        assert isinstance(line, bytes)
        if state is State.SASL:
            return self._finish(authorization.sasl_response(self.data, line))
        return self._finish(self._command(line))

    def resume(self, result: Result) -> Step:
        """The result of the action of the last step."""
        then, self._then = self._then, None
        if then is None:
            raise UsageError("no action is waiting for a result")
        return self._finish(then(self.data, result))

    def tls_started(self) -> None:
        """The driver finished the TLS handshake that STLS asked for."""
        if not self._awaiting_tls:
            raise UsageError("no STLS is waiting for TLS")
        self._awaiting_tls = False
        self.data.tls = True

    def _command(self, line: bytes) -> Step:
        try:
            command = wire.parse_command(line)
        except CommandSyntaxError:
            return bad(replies.UNKNOWN_COMMAND)
        if command.keyword not in KNOWN_COMMANDS:
            return bad(replies.UNKNOWN_COMMAND)
        if command.keyword not in COMMANDS[self.data.state]:
            return bad(replies.WRONG_STATE)
        return HANDLERS[command.keyword](self.data, command)

    def _finish(self, step: Step) -> Step:
        """Count bad commands, remember what an action leads to, note the end."""
        if step.bad:
            self.data.bad_commands += 1
            if self.data.bad_commands >= self.data.config.limits.max_bad_commands:
                step = Step(step.output + wire.status(replies.TOO_MANY_BAD_COMMANDS),
                            close=True)
        if isinstance(step.action, StartTls):
            # RFC 2595 4 / CVE-2011-0411: what the client sent after STLS in plaintext
            # must not be read as if it had come through TLS.
            self._receiver.clear()
            self._awaiting_tls = True
        elif step.action is not None:
            self._then = step.then
        if step.close:
            self.data.state = State.CLOSED
        return step
