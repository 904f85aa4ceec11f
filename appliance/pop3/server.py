"""The POP3 listeners: `listen.pop3_port` (110: STLS) and `listen.pop3s_port` (995: implicit
TLS, RFC 8314 3.3), a thin asyncio driver around `core.Pop3Session`.

The driver owns what the core must not: sockets, the TLS handshakes, the idle timers (short
before login, `pop3.idle_timeout` after, RFC 1939 3), connection limits (the SMTP
`ConnectionTracker`, shared by both ports), and backpressure: a large RETR is written in
slices that wait for the socket to drain, and reading pauses while unprocessed input piles up
(the socket plumbing shared with IMAP is `net.stream`).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from appliance.auth.guard import LoginGuard
from appliance.core import log
from appliance.net.stream import StreamConnection, is_loopback, listen
from appliance.pop3 import replies, wire
from appliance.pop3.actions import StartTls
from appliance.pop3.backend import Pop3Backend, SessionBackend
from appliance.pop3.context import SessionConfig, Step
from appliance.pop3.core import Pop3Session
from appliance.pop3.state import Limits
from appliance.settings import Settings
from appliance.smtp import replies as smtp_replies
from appliance.smtp.connections import ConnectionTracker, Listener
from appliance.storage.db import open_database
from appliance.storage.directory import Account, SqliteDirectory
from appliance.storage.mailbox_api import MailStores
from appliance.storage.maildir.stores import MaildirStores

WRITE_SLICE = 64 * 1024           # output is written this much at a time, draining between
MAX_UNREAD = 64 * 1024            # received but not yet handed to the core: pause reading


@dataclass(frozen=True)
class ListenerConfig:
    """What every connection of one listener is started with."""

    backend: Pop3Backend
    tracker: ConnectionTracker
    tls: ssl.SSLContext
    implicit_tls: bool
    dev_mode: bool
    limits: Limits
    login_timeout: float
    idle_timeout: float


class Pop3Connection(StreamConnection):
    """One client connection: feeds the core, performs its steps, enforces the timers."""

    max_unread = MAX_UNREAD
    log_name = "pop3"

    def __init__(self, config: ListenerConfig) -> None:
        super().__init__(config.tracker, config.tls)
        self._config = config

    def goodbye(self, smtp_reply: str) -> bytes:
        return wire.status(_pop3_refusal(smtp_reply))

    # -- the session ---------------------------------------------------------------------

    async def serve(self) -> None:
        ip = self.client_ip
        backend = self._config.backend.session(ip)
        session = Pop3Session(SessionConfig(
            tls=self._config.implicit_tls, limits=self._config.limits,
            plaintext_login=self._config.dev_mode and is_loopback(ip)))
        try:
            await self._write(session.greeting().output)
            await self._converse(session, backend)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.event("pop3.connection_error", client=ip, reason=str(exc))
        except Exception as exc:
            log.error("pop3.internal_error", exc, client=ip)
        finally:
            backend.close()
            self.close_transport()

    async def _converse(self, session: Pop3Session, backend: SessionBackend) -> None:
        while not self._closed:
            step = session.next_step()
            if step is None:
                timeout = (self._config.idle_timeout if session.authenticated
                           else self._config.login_timeout)
                data = await self._receive(timeout)
                if data is None:
                    return
                session.feed(data)
                continue
            self.busy = True
            while step is not None:
                step = await self._perform(session, backend, step)
            self.busy = False

    async def _perform(self, session: Pop3Session, backend: SessionBackend,
                       step: Step) -> Step | None:
        """Send a step's output, then do its action; the step that follows, if any."""
        for chunk in step.chunks():
            await self._write(chunk)
        if step.close:
            self.close_transport()
            return None
        if isinstance(step.action, StartTls):
            await self.upgrade_tls()      # RFC 2595 4: the handshake right after "+OK"
            session.tls_started()
            return None
        if step.action is not None:
            return session.resume(await backend.perform(step.action))
        return None

    async def _receive(self, timeout: float) -> bytes | None:
        """What the client sent, or None at EOF or after `timeout` idle seconds."""
        try:
            return await self.read_input(timeout)
        except TimeoutError:
            log.event("pop3.idle_timeout", timeout=timeout)
            await self._write(wire.status(replies.IDLE_TIMEOUT))
            return None

    async def _write(self, data: bytes) -> None:
        """Write in slices, each after the socket has drained; a client that reads nothing
        for `idle_timeout` seconds is as idle as one that sends nothing: cut off."""
        for start in range(0, len(data), WRITE_SLICE):
            transport = await self.drained(self._config.idle_timeout)
            if transport is None:
                return
            transport.write(data[start:start + WRITE_SLICE])


def _pop3_refusal(smtp_reply: str) -> str:
    """The tracker answers in SMTP; say the same in POP3."""
    return {smtp_replies.TOO_MANY_FROM_YOU: replies.TOO_MANY_FROM_YOU,
            smtp_replies.TOO_MANY_CONNECTIONS: replies.TOO_MANY_CONNECTIONS}.get(
                smtp_reply, replies.SHUTTING_DOWN)


class _ThreadLocalLookup:
    """Account lookups for `MaildirStores`, one directory connection per thread: stores
    are opened from the executor, and one sqlite3 connection must not serve two threads."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._local = threading.local()

    def get_account(self, address: str) -> Account:
        directory: SqliteDirectory | None = getattr(self._local, "directory", None)
        if directory is None:
            directory = self._local.directory = SqliteDirectory(open_database(self._data_dir))
        return directory.get_account(address)


def build_stores(settings: Settings) -> MaildirStores:
    """The Maildir store of `settings.data_dir` (share one per process with IMAP)."""
    limit = settings.get_int("limits.max_messages_per_account")
    return MaildirStores(settings.data_dir, _ThreadLocalLookup(settings.data_dir),
                         messages_limit=limit or None)


def build_backend(settings: Settings, executor: Executor, guard: LoginGuard,
                  stores: MailStores | None = None) -> Pop3Backend:
    """The process's POP3 backend (over `build_stores(settings)` unless given a store)."""
    return Pop3Backend(guard, stores if stores is not None else build_stores(settings),
                       executor)


def limits(settings: Settings) -> Limits:
    return Limits(max_bad_commands=settings.get_int("pop3.max_bad_commands"),
                  max_login_failures=settings.get_int("pop3.max_login_failures"))


async def start_pop3(settings: Settings, backend: Pop3Backend,
                     tls: ssl.SSLContext) -> list[Listener]:
    """Bind both POP3 listeners (one connection tracker for the two)."""
    tracker = ConnectionTracker(settings.get_int("pop3.max_connections"),
                                settings.get_int("pop3.max_connections_per_ip"))
    listeners = []
    for name, port_setting, implicit in (("pop3", "listen.pop3_port", False),
                                         ("pop3s", "listen.pop3s_port", True)):
        config = ListenerConfig(
            backend, tracker, tls, implicit, settings.get_bool("server.dev_mode"),
            limits(settings), settings.get_int("pop3.login_timeout"),
            settings.get_int("pop3.idle_timeout"))
        listeners.append(await listen(
            name, _factory(config), settings.get_str("listen.address"),
            settings.get_int(port_setting), tracker, tls if implicit else None))
    return listeners


def _factory(config: ListenerConfig) -> Callable[[], Pop3Connection]:
    return lambda: Pop3Connection(config)
