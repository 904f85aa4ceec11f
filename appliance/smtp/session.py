"""The SMTP session protocol: aiosmtpd's `SMTP` with our limits, timeouts and reply catalogue.

This subclass holds no policy (that is the handler's job); it only adds what aiosmtpd has no
hook for: connection admission, a separate DATA timeout, a 421 on timeouts, a configurable
line limit, one STARTTLS per session, a guard on its address parser, and translation of
aiosmtpd's built-in replies into catalogue replies.
"""

from __future__ import annotations

import asyncio
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, syntax

from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker
from appliance.smtp.handler import MxEnvelope


class MailsteadSMTP(SMTP):
    """One SMTP connection, with the limits named in the settings."""

    def __init__(self, handler: Any, *, tracker: ConnectionTracker, line_length_limit: int,
                 data_timeout: float, auth_enabled: bool = False, **kwargs: Any) -> None:
        # aiosmtpd sizes its StreamReader from this attribute inside __init__, and checks DATA
        # lines against it before removing the transparency dot (RFC 5321 4.5.2): one octet
        # more, so that a longest legal line that starts with "." is not refused.
        self.line_length_limit = line_length_limit + 1
        super().__init__(handler, ident=replies.GREETING_IDENT, **kwargs)
        self._tracker = tracker
        self._data_timeout = data_timeout
        self._auth_enabled = auth_enabled
        self._refusal: str | None = None
        self._counted = False

    def _create_envelope(self) -> Envelope:
        return MxEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
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

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._tracker.release(self)
            self._counted = False
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            await self.push(self._refusal.format(hostname=self.hostname))
            self.close_transport()
            return
        await super()._handle_client()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            status = replies.translate(status)
        await super().push(status)

    def _timeout_cb(self) -> None:
        _send_line(self.transport, replies.TIMEOUT.format(hostname=self.hostname))
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    @syntax("DATA")   # an override loses aiosmtpd's HELP text unless it is declared again
    async def smtp_DATA(self, arg: str) -> None:
        self._reset_timeout(self._data_timeout)
        try:
            await super().smtp_DATA(arg)
        finally:
            if self.transport is not None:     # between commands the idle timer applies again
                self._reset_timeout()
        if self._tracker.closing:              # shutting down: no new transaction after this
            self.close_transport(replies.SHUTTING_DOWN)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        # RFC 3207 4.2: no second TLS layer; aiosmtpd would answer 220 and break the session.
        if self._tls_protocol is not None:
            await self.push(replies.TLS_ALREADY_ACTIVE)
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        if not self._auth_enabled:
            await self.push(replies.AUTH_NOT_ENABLED)
            return
        await super().smtp_AUTH(arg)

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


def _peer_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


def _send_line(transport: asyncio.BaseTransport | None, line: str) -> None:
    """Write one reply line straight to the transport (used where no coroutine can run)."""
    if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
        transport.write(line.encode() + b"\r\n")
