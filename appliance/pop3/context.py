"""The data of one POP3 session and the `Step` a command handler returns.

Handlers (`authorization.py`, `transaction.py`) are functions of (`SessionData`, command)
that change the data and return a `Step`: bytes to send, maybe an action for the driver
with the function that takes its result, and whether the session ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from appliance.pop3 import replies, wire
from appliance.pop3.actions import Action, Result
from appliance.pop3.maildrop import Maildrop
from appliance.pop3.state import Limits, State

# What turns an action's result into the next step (a handler's continuation).
Then = Callable[["SessionData", Result], "Step"]


@dataclass(frozen=True)
class SessionConfig:
    """What the driver knows when the connection opens."""

    tls: bool = False                 # implicit TLS (the POP3S port)
    plaintext_login: bool = False     # passwords without TLS: dev mode, loopback only
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Step:
    """What the driver does next: send `output` and then `message` dot-stuffed (all of it
    is `chunks()`), then perform `action` (and hand its result to `Pop3Session.resume`),
    then close the connection if `close`."""

    output: bytes = b""
    message: bytes | None = field(default=None, repr=False)    # RETR and TOP bodies
    action: Action | None = None
    then: Then | None = field(default=None, compare=False, repr=False)
    close: bool = False
    bad: bool = False                 # counts against `Limits.max_bad_commands`

    def chunks(self) -> Iterator[bytes]:
        """Everything to send, in pieces (a message body is stuffed as it is sent)."""
        if self.output:
            yield self.output
        if self.message is not None:
            yield from wire.dot_stuffed_chunks(self.message)


def reply(line: str, **fields: object) -> Step:
    """A one-line reply."""
    return Step(wire.status(line.format(**fields) if fields else line))


def bad(line: str) -> Step:
    """A one-line refusal that counts as a bad command."""
    return Step(wire.status(line), bad=True)


@dataclass
class SessionData:
    """Everything a session remembers between commands."""

    config: SessionConfig
    state: State = State.AUTHORIZATION
    tls: bool = False
    user: str | None = None            # from USER, until PASS
    account: str | None = None         # after login
    maildrop: Maildrop | None = None   # in TRANSACTION
    bad_commands: int = 0
    login_failures: int = 0

    @property
    def login_allowed(self) -> bool:
        """RFC 2595 4: no password before TLS (dev mode on loopback excepted)."""
        return self.tls or self.config.plaintext_login

    def capabilities(self) -> list[str]:
        """The CAPA list for the current state (RFC 2449 5)."""
        lines = list(replies.CAPA_ALWAYS)
        if self.state is State.AUTHORIZATION:
            if self.login_allowed:
                lines.extend(replies.CAPA_LOGIN)
            if not self.tls:
                lines.append(replies.CAPA_STLS)
        lines.append(replies.CAPA_IMPLEMENTATION)
        return lines
