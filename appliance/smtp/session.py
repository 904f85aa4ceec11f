"""The SMTP session protocol: aiosmtpd's `SMTP` with our limits, timeouts and reply catalogue.

This subclass holds no policy (that is the handler's job); it only adds what aiosmtpd has no
hook for: connection admission, refusing clients that talk before the greeting, a 421 on
timeouts, a configurable line limit, one STARTTLS per session, a guard on its address
parser, and translation of aiosmtpd's built-in replies into catalogue replies. DATA and BDAT
(with their timer and limits) come from `transfer.MessageTransfer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import Envelope, syntax

from appliance.core import log
from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker
from appliance.smtp.dsn_commands import DsnCommands
from appliance.smtp.envelope import MxEnvelope
from appliance.smtp.paths import simple_path
from appliance.smtp.transfer import MessageTransfer

READ_BUFFER = 64 * 1024


class MailsteadSMTP(DsnCommands, MessageTransfer):
    """One SMTP connection, with the limits named in the settings.

    DsnCommands: MAIL and RCPT with RFC 3461 parameters; MessageTransfer: DATA and BDAT.
    With `greeting_delay` (seconds) the 220 waits that long; a client that sent anything
    before it is an early talker and gets a 554 instead (`refuse_early_talkers`, MX only).
    """

    def __init__(self, handler: Any, *, tracker: ConnectionTracker, line_length_limit: int,
                 data_timeout: float, auth_enabled: bool = False, implicit_tls: bool = False,
                 greeting_delay: float = 0.0, refuse_early_talkers: bool = False,
                 **kwargs: Any) -> None:
        # aiosmtpd sizes its StreamReader from this attribute inside __init__: how much it
        # buffers before a command line is "too long" (commands are held to 512 octets
        # anyway, RFC 5321 4.5.3.1.4) and before the socket is paused. Message data is read
        # in pieces of about this size (transfer.py checks DATA lines itself): a larger
        # buffer means fewer reads and pauses per message.
        self.line_length_limit = max(line_length_limit + 1, READ_BUFFER)
        kwargs.update(data_timeout=data_timeout, max_line_length=line_length_limit)
        if auth_enabled:
            # Submission: AUTH before MAIL, AUTH only inside TLS. On an implicit-TLS listener
            # every byte is already encrypted, but aiosmtpd only knows about STARTTLS: it
            # must not require TLS there (and must not warn that it does not).
            kwargs.update(auth_required=True, auth_require_tls=not implicit_tls)
        with _no_auth_tls_warning(implicit_tls):
            super().__init__(handler, ident=replies.GREETING_IDENT, **kwargs)
        self._tracker = tracker
        self._auth_enabled = auth_enabled
        self._greeting_delay = greeting_delay
        self._refuse_early_talkers = refuse_early_talkers
        self._early_talker = False
        self._greeted = False
        self._refusal: str | None = None
        self._counted = False
        self._deadline = 0.0     # loop time when the session times out (see _reset_timeout)
        self._held_lines: list[str] = []     # of a multi-line reply (see push)

    def _create_envelope(self) -> Envelope:
        return MxEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        simple = simple_path(arg)        # the usual <local@domain>, without the slow parser
        if simple is not None:
            return simple
        # The stdlib parser behind aiosmtpd raises IndexError on some truncated paths
        # ("<alice@", "<\""): a malformed address (553 / 502), not an internal error (451).
        try:
            return super()._getaddr(arg)
        except IndexError:
            return None, None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = not self._counted
        super().connection_made(transport)
        if first:
            self._counted = True
            self._refusal = self._tracker.admit(self, _peer_ip(transport))
            if self._handler_coroutine is not None:
                self._handler_coroutine.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        # aiosmtpd's eof_received cancels the handler and leaves the transport half-open
        # for the handler to close. A handler cancelled before its first step never does:
        # under uvloop the accept, the client's data and its EOF can all be handled in one
        # loop iteration. Close here, or the connection (and its slot) would live on.
        if task.cancelled():
            self.close_transport()

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._tracker.release(self)
            self._counted = False
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._refusal is None and not self._greeted:
            self._early_talker = True
        super().data_received(data)

    async def _handle_client(self) -> None:
        if self._refusal is None and self._refuse_early_talkers:
            await self._wait_before_greeting()
        if self.transport is None or self.transport.is_closing():
            return                 # closed while we waited (client gone, or shutdown)
        if self._refusal is not None:
            await self.push(self._refusal.format(hostname=self.hostname))
            self.close_transport()
            return
        self._greeted = True       # aiosmtpd writes the 220 before it next awaits anything
        await super()._handle_client()

    async def _wait_before_greeting(self) -> None:
        """Postscreen's pregreet test: whoever talks before the 220 is refused (554)."""
        if self._greeting_delay > 0:
            try:
                await asyncio.sleep(self._greeting_delay)
            except asyncio.CancelledError:    # the client hung up (EOF): close our side too
                self.close_transport()
                raise
        if self._early_talker and self.transport is not None:
            log.event("smtp.early_talker", client=_peer_ip(self.transport))
            self._refusal = replies.EARLY_TALKER

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            status = replies.translate(status)
            # aiosmtpd pushes a multi-line reply (EHLO) a line at a time, each its own send()
            # and drain: hold the "250-" lines and send them with the last one.
            if status[3:4] == "-" and "\n" not in status:
                self._held_lines.append(status)
                return
            if self._held_lines:
                status = "\r\n".join([*self._held_lines, status])
                self._held_lines.clear()
        await super().push(status)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels and re-creates its timer at every command: a heap push and a dead
        # handle each time. Moving a deadline is enough: the one timer re-arms itself when
        # it fires before the deadline, and is replaced only when the deadline comes sooner.
        now = self.loop.time()
        self._deadline = now + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if (handle is None or handle.cancelled() or handle.when() > self._deadline
                or handle.when() <= now):
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._on_timer)
        else:
            self._timeout_cb()

    def _timeout_cb(self) -> None:
        _send_line(self.transport, replies.TIMEOUT.format(hostname=self.hostname))
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def _transaction_ended(self) -> None:
        if self._tracker.closing:              # shutting down: no new transaction after this
            self.close_transport(replies.SHUTTING_DOWN)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        # RFC 3207 4.2: no second TLS layer; aiosmtpd would answer 220 and break the session.
        if self._tls_protocol is not None:
            await self.push(replies.TLS_ALREADY_ACTIVE)
            return
        await super().smtp_STARTTLS(arg)

    @syntax("AUTH <mechanism>", when="_auth_enabled")     # HELP lists it where it works
    async def smtp_AUTH(self, arg: str) -> None:
        if not self._auth_enabled:
            await self.push(replies.AUTH_NOT_ENABLED)
            return
        # RFC 4954 4: mechanism names are case-insensitive; aiosmtpd compares them as sent.
        mechanism, _, rest = (arg or "").strip().partition(" ")
        await super().smtp_AUTH(f"{mechanism.upper()} {rest}".strip())

    @property
    def in_transaction(self) -> bool:
        """True between MAIL FROM and the end of DATA (or RSET)."""
        return self.envelope is not None and self.envelope.mail_from is not None

    def close_transport(self, reply: str | None = None) -> None:
        """Close the connection, first sending `reply` (e.g. a 421 at shutdown) if given."""
        if self.transport is None or self.transport.is_closing():
            return
        if reply is not None:
            _send_line(self.transport, reply.format(hostname=self.hostname))
        self.transport.close()


@contextlib.contextmanager
def _no_auth_tls_warning(active: bool) -> Iterator[None]:
    """Silence aiosmtpd's warning about AUTH without TLS where TLS is implicit."""
    if not active:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        yield


def _peer_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


def _send_line(transport: asyncio.BaseTransport | None, line: str) -> None:
    """Write one reply line straight to the transport (used where no coroutine can run)."""
    # Duck-typed: uvloop's transports write but do not subclass asyncio.WriteTransport.
    if transport is not None and hasattr(transport, "write") and not transport.is_closing():
        cast(asyncio.WriteTransport, transport).write(line.encode() + b"\r\n")
