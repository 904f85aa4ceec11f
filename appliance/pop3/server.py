"""The POP3 listeners: `listen.pop3_port` (110: STLS) and `listen.pop3s_port` (995: implicit
TLS, RFC 8314 3.3), a thin asyncio driver around `core.Pop3Session`.

The driver owns what the core must not: sockets, the TLS handshakes, the idle timers (short
before login, `pop3.idle_timeout` after, RFC 1939 3), connection limits (the SMTP
`ConnectionTracker`, shared by both ports), and backpressure: a large RETR is written in
slices that wait for the socket to drain, and reading pauses while unprocessed input piles up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from appliance.auth.guard import LoginGuard
from appliance.core import log
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
from appliance.storage.maildir.account import MaildirStores

TLS_HANDSHAKE_TIMEOUT = 20.0
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


class Pop3Connection(asyncio.Protocol):
    """One client connection: feeds the core, performs its steps, enforces the timers."""

    def __init__(self, config: ListenerConfig) -> None:
        self._config = config
        self._transport: asyncio.Transport | None = None
        self._unread: list[bytes] = []
        self._unread_size = 0
        self._eof = False
        self._data_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._responding = False     # between a command and the end of its response

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        refusal = self._config.tracker.admit(self, ip)
        if refusal is not None:
            self.close_transport(_pop3_refusal(refusal))
            return
        self._task = asyncio.ensure_future(self._run(ip))

    def data_received(self, data: bytes) -> None:
        self._unread.append(data)
        self._unread_size += len(data)
        self._data_ready.set()
        if self._unread_size > MAX_UNREAD and self._transport is not None:
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._data_ready.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._closed = True
        self._data_ready.set()
        self._can_write.set()
        self._config.tracker.release(self)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- what the tracker needs (smtp.connections.Closable) ------------------------------

    @property
    def in_transaction(self) -> bool:
        """Busy with a command (a login, a RETR, QUIT's removals): shutdown waits for it."""
        return self._responding

    def close_transport(self, reply: str | None = None) -> None:
        """Close now. The tracker's `reply` is SMTP's: a POP3 client gets POP3's shutdown
        line instead, and none in the middle of a response, where it would read as data."""
        if self._closed or self._transport is None:
            return
        self._closed = True
        if reply is not None and not self._responding and not self._transport.is_closing():
            line = reply if reply.startswith("-ERR") else replies.SHUTTING_DOWN
            self._transport.write(wire.status(line))
        self._transport.close()

    # -- the session ---------------------------------------------------------------------

    async def _run(self, ip: str) -> None:
        backend = self._config.backend.session(ip)
        session = Pop3Session(SessionConfig(
            tls=self._config.implicit_tls, limits=self._config.limits,
            plaintext_login=self._config.dev_mode and _is_loopback(ip)))
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
            self._responding = True
            while step is not None:
                step = await self._perform(session, backend, step)
            self._responding = False

    async def _perform(self, session: Pop3Session, backend: SessionBackend,
                       step: Step) -> Step | None:
        """Send a step's output, then do its action; the step that follows, if any."""
        for chunk in step.chunks():
            await self._write(chunk)
        if step.close:
            self.close_transport()
            return None
        if isinstance(step.action, StartTls):
            await self._start_tls()
            session.tls_started()
            return None
        if step.action is not None:
            return session.resume(await backend.perform(step.action))
        return None

    async def _receive(self, timeout: float) -> bytes | None:
        """What the client sent, or None at EOF or after `timeout` idle seconds."""
        while not self._unread and not self._eof:
            self._data_ready.clear()
            try:
                await asyncio.wait_for(self._data_ready.wait(), timeout)
            except TimeoutError:
                log.event("pop3.idle_timeout", timeout=timeout)
                await self._write(wire.status(replies.IDLE_TIMEOUT))
                return None
        if not self._unread:
            return None
        data = b"".join(self._unread)
        self._unread.clear()
        self._unread_size = 0
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()
        return data

    async def _write(self, data: bytes) -> None:
        """Write in slices, each after the socket has drained; a client that reads nothing
        for `idle_timeout` seconds is as idle as one that sends nothing: cut off."""
        for start in range(0, len(data), WRITE_SLICE):
            if not self._can_write.is_set():
                try:
                    await asyncio.wait_for(self._can_write.wait(), self._config.idle_timeout)
                except TimeoutError:
                    log.event("pop3.write_timeout", timeout=self._config.idle_timeout)
                    self._abort()
                    return
            if self._closed or self._transport is None:
                return
            self._transport.write(data[start:start + WRITE_SLICE])

    def _abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    async def _start_tls(self) -> None:
        """RFC 2595 4: the handshake right after "+OK"; plaintext sent meanwhile is dropped."""
        assert self._transport is not None
        self._unread.clear()
        self._unread_size = 0
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(self._transport, self, self._config.tls,
                                         server_side=True,
                                         ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        if transport is None:
            raise ConnectionError("TLS handshake did not complete")
        self._transport = transport


def _is_loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _pop3_refusal(smtp_reply: str) -> str:
    """The tracker answers in SMTP; say the same in POP3."""
    return {smtp_replies.TOO_MANY_FROM_YOU: replies.TOO_MANY_FROM_YOU,
            smtp_replies.SHUTTING_DOWN: replies.SHUTTING_DOWN}.get(
                smtp_reply, replies.TOO_MANY_CONNECTIONS)


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
        address, port = settings.get_str("listen.address"), settings.get_int(port_setting)
        server = await asyncio.get_running_loop().create_server(
            _factory(config), host=address, port=port, reuse_address=True, backlog=512,
            ssl=tls if implicit else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit else None)
        log.event("listener.started", listener=name, address=address, port=port)
        listeners.append(Listener(name, server, tracker))
    return listeners


def _factory(config: ListenerConfig) -> Callable[[], Pop3Connection]:
    return lambda: Pop3Connection(config)
