"""What the asyncio driver must do for one parsed command: the seam between the IMAP core and
the server.

The core (`session.ImapSession`) never touches sockets, TLS or the event loop. For each
command the driver asks `ImapSession.plan(command)`, a quick non-blocking decision, and gets
one of these:

- `Run`: call `ImapSession.run(command)` in a worker thread (it does blocking store I/O) and
  write every chunk it yields, in order, waiting for the socket to drain between chunks;
- `Reply`: write these bytes now (refusals decided without I/O, e.g. LOGIN before TLS);
- `Login`: check `username`/`password` with the login guard (async), then call
  `ImapSession.logged_in(tag, address)` or `ImapSession.login_failed(tag, result)`;
- `Authenticate`: run the SASL exchange for `mechanism` (PLAIN or LOGIN, with `initial`
  from SASL-IR): write `+ <base64>` challenges (`"+ \\r\\n"` for none) and read raw client lines
  (`Receiver.expect_line`, a lone `*` cancels with BAD), then the guard as for `Login`;
- `StartTls`: write `reply` (the tagged OK), upgrade the connection, then call
  `ImapSession.tls_started()` (which forgets what was said before TLS, RFC 9051 6.2.1);
- `Idle`: write `reply` (`+ idling`), then until the client sends `DONE` (a raw line,
  case-insensitive): every `poll_interval` seconds call `ImapSession.idle_poll()` in a thread
  and write what it returns; on DONE write `ImapSession.idle_done(tag)`; anything else than
  DONE ends IDLE with `ImapSession.idle_done(tag, bad=True)`;
- `Logout`: write `reply` (BYE and the tagged OK) and close the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import ImapCommand


@dataclass(frozen=True)
class Run:
    command: ImapCommand


@dataclass(frozen=True)
class Reply:
    data: bytes


@dataclass(frozen=True)
class Login:
    tag: str
    username: str
    password: str


@dataclass(frozen=True)
class Authenticate:
    tag: str
    mechanism: str              # upper case: PLAIN or LOGIN
    initial: bytes | None       # SASL-IR initial response, decoded from base64 ("=" → b"")


@dataclass(frozen=True)
class StartTls:
    tag: str
    reply: bytes


@dataclass(frozen=True)
class Idle:
    tag: str
    reply: bytes
    poll_interval: float = 0.5  # a delivery wakes IDLE within one second


@dataclass(frozen=True)
class Logout:
    reply: bytes


Plan = Run | Reply | Login | Authenticate | StartTls | Idle | Logout
