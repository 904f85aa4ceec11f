"""The IMAP listeners: `listen.imap_port` (143: STARTTLS) and `listen.imaps_port` (993: implicit
TLS, RFC 8314 3.3), a thin asyncio driver around `session.ImapSession` (see `plan` for the seam).

The driver owns what the core must not: sockets, the TLS handshakes, the timers (a short
`imap.login_timeout` before login, the `imap.autologout` timer after it, RFC 9051 5.4),
connection limits (the SMTP `ConnectionTracker`, shared by both ports, plus a count per
account), the bad-command limit, and backpressure: a command's output is pulled from the core
in a worker thread in batches of `RUN_BATCH` octets, each written only when the socket has
drained, and reading pauses while unprocessed input piles up. The SASL exchanges and IDLE are
in `server_plans` (how each plan is performed), the settings in `server_config`; this module
is the connection under them and the listeners.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from appliance.auth.guard import LoginGuard
from appliance.core import log
from appliance.imap import responses as r
from appliance.imap.commands.base import CommandError
from appliance.imap.receiver import (
    NEED_DATA,
    Command,
    ContinuationRequest,
    Event,
    RawLine,
    Receiver,
    ReceiverError,
)
from appliance.imap.server_config import ImapListenerConfig, listener_config
from appliance.imap.server_plans import BYE_AUTOLOGOUT, PlanRunner, SessionEndedError
from appliance.imap.session import ImapSession
from appliance.settings import Settings
from appliance.smtp import replies as smtp_replies
from appliance.smtp.connections import Listener
from appliance.storage.mailbox_api import MailStores

T = TypeVar("T")

TLS_HANDSHAKE_TIMEOUT = 20.0
MAX_UNREAD = 256 * 1024      # received but not yet handed to the receiver: pause reading

# The driver's own lines (the core's catalogue is `responses`).
CONTINUE_LITERAL = r.continuation("Ready for literal")
BYE_TOO_MANY_BAD = r.untagged_bye("Too many invalid commands")
BYE_SHUTTING_DOWN = r.untagged_bye("Server shutting down, try again later")
BYE_TOO_MANY_CONNECTIONS = r.untagged_bye("[UNAVAILABLE] Too many connections, try again later")
BYE_TOO_MANY_FROM_YOU = r.untagged_bye(
    "[UNAVAILABLE] Too many connections from your address, try again later")


class ImapConnection(asyncio.Protocol):
    """One client connection: frames commands, performs the core's plans, keeps the timers."""

    def __init__(self, config: ImapListenerConfig, implicit_tls: bool) -> None:
        self.config = config
        self.implicit_tls = implicit_tls
        self.client_ip = "unknown"
        self.receiver = Receiver(config.pre_auth_limits)
        self.account: str | None = None
        self._transport: asyncio.Transport | None = None
        self._unread: list[bytes] = []
        self._unread_size = 0
        self._eof = False
        self._data_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.busy = False
        self._closed = False
        self._bad = 0
        self._task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        refusal = self.config.tracker.admit(self, self.client_ip)
        if refusal is not None:
            self._send_and_close(_imap_refusal(refusal))
            return
        self._task = asyncio.ensure_future(self._run())

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
        self.config.tracker.release(self)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- what the tracker needs (smtp.connections.Closable) ------------------------------

    @property
    def in_transaction(self) -> bool:
        """Busy with a command or a login: shutdown gives it the grace period."""
        return self.busy

    def close_transport(self, reply: str | None = None) -> None:
        """Close now; a client that is between commands is told why (IMAP BYE)."""
        if reply is not None and not self.busy:
            self._send_and_close(_imap_refusal(reply))
        else:
            self._send_and_close(b"")

    def _send_and_close(self, data: bytes) -> None:
        if self._closed or self._transport is None:
            return
        self._closed = True
        if data and not self._transport.is_closing():
            self._transport.write(data)
        self._transport.close()

    def _abort(self) -> None:
        """Drop the connection and its unsent output (close() would wait to flush it)."""
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    # -- I/O the session parts share -----------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write once the socket has drained; SessionEndedError when the connection is gone.
        A client that stops reading is dropped after the idle timeout (a slow-read attack
        would otherwise hold the connection and its buffered output for ever)."""
        if not self._can_write.is_set():
            timeout = self.config.autologout if self.account else self.config.login_timeout
            try:
                await asyncio.wait_for(self._can_write.wait(), timeout)
            except TimeoutError:
                log.event("imap.write_timeout", client=self.client_ip, timeout=timeout)
                self._abort()
                raise SessionEndedError from None
        if self._closed or self._transport is None:
            raise SessionEndedError
        self._transport.write(data)

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking store work in the engine's pool (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.config.executor, function, *args)

    async def receive(self, timeout: float) -> bytes | None:
        """What the client sent, None after `timeout` silent seconds; SessionEndedError at EOF."""
        while not self._unread and not self._eof:
            self._data_ready.clear()
            try:
                await asyncio.wait_for(self._data_ready.wait(), max(timeout, 0.0))
            except TimeoutError:
                return None
        if not self._unread:
            raise SessionEndedError
        data = b"".join(self._unread)
        self._unread.clear()
        self._unread_size = 0
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()
        return data

    async def next_event(self, timeout: float, rearm_on_data: bool) -> Event:
        """The receiver's next event. Silence for `timeout` seconds (from now, or from the
        last octets with `rearm_on_data`) ends the connection with BYE: before login a
        command must be complete in time, so a slowloris client cannot trickle forever."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (event := self.receiver.next_event()) is NEED_DATA:
            data = await self.receive(deadline - loop.time())
            if data is None:
                log.event("imap.autologout", client=self.client_ip, timeout=timeout)
                await self.write(BYE_AUTOLOGOUT)
                raise SessionEndedError
            if rearm_on_data:
                deadline = loop.time() + timeout
            self.receiver.feed(data)
        return event

    async def next_line(self, session: ImapSession) -> RawLine | ReceiverError:
        """A raw client line (SASL responses, IDLE's DONE) under the session's timer."""
        self.receiver.expect_line()
        event = await self.next_event(*self._timer(session))
        assert isinstance(event, RawLine | ReceiverError)
        return event

    async def start_tls(self) -> None:
        """RFC 9051 6.2.1 / RFC 3207 6: plaintext pipelined after STARTTLS is dropped, never
        read as if it had come over TLS (the STARTTLS command injection attack)."""
        assert self._transport is not None
        self._unread.clear()
        self._unread_size = 0
        self.receiver = Receiver(self.config.pre_auth_limits)     # STARTTLS is pre-auth only
        transport = await asyncio.get_running_loop().start_tls(
            self._transport, self, self.config.tls, server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        if transport is None:
            raise ConnectionError("TLS handshake did not complete")
        self._transport = transport

    # -- the session ---------------------------------------------------------------------

    async def _run(self) -> None:
        session = ImapSession(self.config.stores, self.config.session,
                              secure=self.implicit_tls, client_ip=self.client_ip,
                              loopback=_is_loopback(self.client_ip))
        try:
            await self.write(session.greeting())
            await self._converse(session, PlanRunner(self, session))
        except (SessionEndedError, ConnectionError, ssl.SSLError, OSError, TimeoutError) as exc:
            if not isinstance(exc, SessionEndedError):
                log.event("imap.connection_error", client=self.client_ip, reason=str(exc))
        except Exception as exc:
            log.error("imap.internal_error", exc, client=self.client_ip)
        finally:
            self.release_account()
            session.close()
            self._send_and_close(b"")

    async def _converse(self, session: ImapSession, driver: PlanRunner) -> None:
        while not self._closed:
            event = await self.next_event(*self._timer(session))
            if isinstance(event, ContinuationRequest):
                await self.write(CONTINUE_LITERAL)
            elif isinstance(event, ReceiverError):
                reply = CommandError(event.tag, event.text, event.status, event.code).reply()
                await self.answered(event.tag, reply)
                if event.fatal:         # the receiver cannot get back in step: end it
                    self._send_and_close(r.untagged_bye(r.PROTOCOL_ERROR))
                    return
            elif isinstance(event, Command):
                try:
                    self.busy = True
                    await driver.perform(event)
                finally:
                    self.busy = False
                    for literal in event.literals:
                        literal.close()

    def _timer(self, session: ImapSession) -> tuple[float, bool]:
        if session.account is None:
            return self.config.login_timeout, False
        return self.config.autologout, True

    async def answered(self, tag: str | None, output: bytes) -> None:
        """Write a command's last output and count consecutive BAD answers."""
        if output:
            await self.write(output)
        self.note_status(tag, output)

    def note_status(self, tag: str | None, tail: bytes) -> None:
        """Count a BAD tagged answer (in `tail`, the end of the output); too many → BYE."""
        prefix = f"{tag or '*'} BAD ".encode()
        last = tail.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        self._bad = self._bad + 1 if last.startswith(prefix) else 0
        if self._bad >= self.config.max_bad_commands:
            log.event("imap.too_many_bad_commands", client=self.client_ip)
            self._send_and_close(BYE_TOO_MANY_BAD)
            raise SessionEndedError

    # -- accounts ------------------------------------------------------------------------

    def claim_account(self, account: str) -> bool:
        """Count this connection against `account`'s limit; False when it is full."""
        if not self.config.accounts.acquire(account):
            return False
        self.account = account
        return True

    def release_account(self) -> None:
        if self.account is not None:
            self.config.accounts.release(self.account)
            self.account = None


def _is_loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _imap_refusal(smtp_reply: str) -> bytes:
    """The tracker answers in SMTP; say the same as an IMAP BYE (RFC 9051 7.1.5)."""
    return {smtp_replies.TOO_MANY_FROM_YOU: BYE_TOO_MANY_FROM_YOU,
            smtp_replies.TOO_MANY_CONNECTIONS: BYE_TOO_MANY_CONNECTIONS}.get(
                smtp_reply, BYE_SHUTTING_DOWN)


# -- the listeners ---------------------------------------------------------------------------

async def start_imap(settings: Settings, executor: Executor, guard: LoginGuard,
                     stores: MailStores, tls: ssl.SSLContext) -> list[Listener]:
    """Bind both IMAP listeners."""
    config = listener_config(settings, executor, guard, stores, tls)
    address = settings.get_str("listen.address")
    return await bind(config, address, settings.get_int("listen.imap_port"),
                      settings.get_int("listen.imaps_port"))


async def bind(config: ImapListenerConfig, address: str, imap_port: int,
               imaps_port: int) -> list[Listener]:
    """Listen on `imap_port` (STARTTLS) and `imaps_port` (implicit TLS) with `config`."""
    listeners = []
    for name, port, implicit in (("imap", imap_port, False), ("imaps", imaps_port, True)):
        server = await asyncio.get_running_loop().create_server(
            _factory(config, implicit), host=address, port=port, reuse_address=True,
            backlog=512, ssl=config.tls if implicit else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit else None)
        log.event("listener.started", listener=name, address=address, port=port)
        listeners.append(Listener(name, server, config.tracker))
    return listeners


def _factory(config: ImapListenerConfig, implicit: bool) -> Callable[[], ImapConnection]:
    return lambda: ImapConnection(config, implicit)
