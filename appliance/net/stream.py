"""The asyncio side that the IMAP and POP3 drivers share: one client connection's transport,
its input buffer (reading pauses while too much piles up), the write gate that waits for the
socket to drain, the STARTTLS upgrade, what the `ConnectionTracker` needs, and binding a
listener. What is said on the wire, and when, stays in each protocol's `server` module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from typing import ClassVar, cast

from appliance.core import log
from appliance.smtp.connections import ConnectionTracker, Listener

TLS_HANDSHAKE_TIMEOUT = 20.0
LISTEN_BACKLOG = 512


class StreamConnection(asyncio.Protocol):
    """One client connection under a protocol driver.

    A subclass sets `max_unread` and `log_name` and fills in `goodbye` (the tracker's SMTP
    reply said in its protocol) and `serve` (the session, started once the tracker has
    admitted the connection). It sets `busy` while a command is being answered.
    """

    max_unread: ClassVar[int] = 64 * 1024    # received, not yet taken: pause reading
    log_name: ClassVar[str] = "stream"
    # The loop the connection runs on, from `connection_made` on: kept, because
    # `asyncio.get_running_loop` makes a getpid system call each time (CPython 3.11 checks
    # for a fork), twice per command on the paths that answer in the protocol callback.
    loop: asyncio.AbstractEventLoop

    def __init__(self, tracker: ConnectionTracker, tls: ssl.SSLContext) -> None:
        self._tracker = tracker
        self._tls = tls
        self.client_ip = "unknown"
        self.busy = False                     # between a command and the end of its answer
        self._transport: asyncio.Transport | None = None
        self._unread: list[bytes] = []
        self._unread_size = 0
        self._eof = False
        self._closed = False
        self._paused = False                  # the transport asked us to stop writing
        # One future while the driver waits for input or for the socket to drain, made
        # only then: a thousand idle clients each park one, not two Events and a wait_for
        # task.
        self._reading: asyncio.Future[None] | None = None
        self._draining: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        # The loop's time when the driver last waited for input: how long it has been
        # working for this connection without a pause (pipelined commands answered on the
        # loop give the others their turn after a while).
        self.slice_start = 0.0

    # -- what the subclass says ----------------------------------------------------------

    def goodbye(self, smtp_reply: str) -> bytes:
        """The line telling a client why it is refused or closed (`smtp_reply` is the
        tracker's, from `smtp.replies`)."""
        raise NotImplementedError

    async def serve(self) -> None:
        """The session; the connection is closed when it returns."""
        raise NotImplementedError

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.loop = asyncio.get_running_loop()
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self._transport = cast(asyncio.Transport, transport)
        peer = self._transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        refusal = self._tracker.admit(self, self.client_ip)
        if refusal is not None:
            self._send_and_close(self.goodbye(refusal))
            return
        self._task = asyncio.ensure_future(self.serve())

    def data_received(self, data: bytes) -> None:
        self._unread.append(data)
        self._unread_size += len(data)
        _wake(self._reading)
        if self._unread_size > self.max_unread and self._transport is not None:
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        _wake(self._reading)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._closed = True
        self._paused = False
        _wake(self._reading)
        _wake(self._draining)
        self._tracker.release(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        _wake(self._draining)

    # -- what the tracker needs (smtp.connections.Closable) ------------------------------

    @property
    def in_transaction(self) -> bool:
        """Busy answering a command (a login, a FETCH, a RETR): shutdown waits for it."""
        return self.busy

    def close_transport(self, reply: str | None = None) -> None:
        """Close now. A client between commands is told why (`goodbye`); one in the middle
        of an answer is not, where the line would read as part of it."""
        self._send_and_close(self.goodbye(reply) if reply is not None and not self.busy
                             else b"")

    # -- I/O for the driver --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

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

    async def read_input(self, timeout: float) -> bytes | None:
        """All the client has sent so far, waiting up to `timeout` seconds for some; None at
        EOF. Reading resumes if it was paused.

        Raises:
            TimeoutError: nothing arrived within `timeout` seconds.
        """
        while not self._unread and not self._eof:
            loop = self.loop
            self._reading = loop.create_future()
            try:
                await _wait(self._reading, timeout)
            finally:
                self._reading = None
            self.slice_start = loop.time()
        if not self._unread:
            return None
        data = b"".join(self._unread)
        self._unread.clear()
        self._unread_size = 0
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()
        return data

    async def drained(self, timeout: float) -> asyncio.Transport | None:
        """The transport to write to once the socket has drained; None when the connection
        is gone. A client that reads nothing for `timeout` seconds is dropped: a slow-read
        attack would otherwise hold the connection and its buffered output for ever."""
        if self._paused:
            self._draining = asyncio.get_running_loop().create_future()
            try:
                await _wait(self._draining, timeout)
            except TimeoutError:
                log.event(f"{self.log_name}.write_timeout", client=self.client_ip,
                          timeout=timeout)
                self._abort()
                return None
            finally:
                self._draining = None
        return None if self._closed else self._transport

    async def upgrade_tls(self) -> None:
        """The server side of STARTTLS/STLS. Plaintext the client pipelined after the
        command is dropped, never read as if it had come over TLS (RFC 3207 6, RFC 2595 4:
        the STARTTLS command injection attack)."""
        assert self._transport is not None
        self._unread.clear()
        self._unread_size = 0
        transport = await asyncio.get_running_loop().start_tls(
            self._transport, self, self._tls, server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        if transport is None:
            raise ConnectionError("TLS handshake did not complete")
        self._transport = transport


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(waiter: asyncio.Future[None], timeout: float) -> None:
    """Until `waiter` is woken; TimeoutError after `timeout` seconds (a timer handle, no
    task of its own as `asyncio.wait_for` makes)."""
    timer = asyncio.get_running_loop().call_later(max(timeout, 0.0), _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def is_loopback(ip: str) -> bool:
    """Whether `ip` (as the transport reports it, IPv4-mapped or not) is a loopback address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


async def listen(name: str, factory: Callable[[], asyncio.Protocol], address: str, port: int,
                 tracker: ConnectionTracker, tls: ssl.SSLContext | None) -> Listener:
    """Bind one listener; with `tls`, every connection starts with the handshake (implicit
    TLS, RFC 8314 3.3)."""
    server = await asyncio.get_running_loop().create_server(
        factory, host=address, port=port, reuse_address=True, backlog=LISTEN_BACKLOG,
        ssl=tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if tls is not None else None)
    log.event("listener.started", listener=name, address=address, port=port)
    return Listener(name, server, tracker)
