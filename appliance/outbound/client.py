"""The asyncio SMTP client: one session to one MX address, driving the pure protocol core.

`SmtpSession.connect` opens the TCP connection and reads the greeting; `hello` sends EHLO
(HELO if refused); `starttls` upgrades and says EHLO again (RFC 3207 4.2); `send` runs one
mail transaction and may be called again for further messages on the same session; `quit`
ends it. Every wait has its RFC 5321 4.5.3.2 timeout. Failures raise `SessionError` with a
temporary reply from `delivery_replies`; per-recipient answers come back as results.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from dataclasses import dataclass
from typing import NoReturn

from appliance.outbound import delivery_replies as dr
from appliance.outbound.smtp_client_protocol import (
    Capabilities,
    PeerProtocolError,
    Phase,
    Reply,
    ReplyParser,
    helo_capabilities,
    parse_ehlo,
)
from appliance.outbound.smtp_client_transaction import MailTransaction, Step
from appliance.outbound.types import OutboundEnvelope, RecipientResult

BLOCK = 64 * 1024          # one write of the body; each must drain within data_block
READ_CHUNK = 64 * 1024
CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Timeouts:
    """Seconds for each wait (RFC 5321 4.5.3.2 gives the defaults for all but connect)."""

    connect: float = 30.0
    greeting: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0

    def of(self, phase: Phase) -> float:
        value: float = getattr(self, phase.value)
        return value


class SessionError(Exception):
    """The session cannot go on. `reply` is a temporary SMTP reply naming the cause.

    `kind` is one of "connect", "greeting", "hello", "tls", "tls_verify", "timeout",
    "lost" or "protocol", for the transport to decide what to try next.
    """

    def __init__(self, reply: str, kind: str, reason: str = "") -> None:
        super().__init__(reply)
        self.reply = reply
        self.kind = kind
        self.reason = reason or reply      # the cause alone, to quote inside other replies


class SmtpSession:
    """One SMTP client connection (create it with `await SmtpSession.connect(...)`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 remote: str, timeouts: Timeouts) -> None:
        self.remote = remote
        self.timeouts = timeouts
        self.caps = Capabilities(esmtp=False)
        self.tls: dict[str, str] = {}       # "tls" (version) and "cipher" once encrypted
        self.usable = True                  # False after a failure or a 421
        self.uncertain: list[str] = []      # see MailTransaction.uncertain
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self._replies: collections.deque[Reply] = collections.deque()
        self._needs_rset = False

    @classmethod
    async def connect(cls, address: str, port: int, *, remote: str,
                      timeouts: Timeouts) -> SmtpSession:
        """Connect to `address`:`port` and read a 220 greeting (RFC 5321 3.1).

        Raises:
            SessionError: kind "connect" when no connection was made, "greeting" when the
                peer refused the session, or a read failure's kind.
        """
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), timeouts.connect)
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise SessionError(dr.render(dr.CONNECT_FAILED, remote=remote, reason=reason),
                               "connect", reason) from exc
        session = cls(reader, writer, remote=remote, timeouts=timeouts)
        greeting = await session._reply(Phase.GREETING, "greeting")
        if greeting.code != 220:
            await session.close()
            raise SessionError(dr.render(dr.GREETING_REFUSED, remote=remote,
                                         reply=greeting.text), "greeting")
        return session

    async def hello(self, name: str) -> Capabilities:
        """EHLO, or HELO when EHLO is refused (RFC 5321 4.1.1.1); returns what was offered."""
        reply = await self._command(f"EHLO {name}\r\n".encode(), Phase.MAIL, "EHLO")
        if reply.positive:
            self.caps = parse_ehlo(reply)
            return self.caps
        if reply.code == 421:
            await self._fail(dr.GREETING_REFUSED, "hello", reply=reply.text)
        reply = await self._command(f"HELO {name}\r\n".encode(), Phase.MAIL, "HELO")
        if not reply.positive:
            await self._fail(dr.GREETING_REFUSED, "hello", reply=reply.text)
        self.caps = helo_capabilities(reply)
        return self.caps

    async def starttls(self, context: ssl.SSLContext, server_hostname: str, name: str) -> None:
        """STARTTLS (RFC 3207), the handshake, then EHLO again on the encrypted channel.

        Raises:
            SessionError: kind "tls_verify" for a certificate that fails verification,
                "tls" for any other refusal or handshake failure.
        """
        reply = await self._command(b"STARTTLS\r\n", Phase.MAIL, "STARTTLS")
        if reply.code != 220:
            await self._fail(dr.TLS_FAILED, "tls", reason=f"STARTTLS refused: {reply.text}")
        if self._parser.pending or self._replies:
            # Anything sent before the handshake would be read as if it came over TLS
            # (the STARTTLS response-injection class, CVE-2011-0411): refuse the peer.
            await self._fail(dr.PROTOCOL_ERROR, "protocol", stage="STARTTLS",
                             reason="data after the 220 reply to STARTTLS")
        try:
            await asyncio.wait_for(
                self._writer.start_tls(context, server_hostname=server_hostname),
                self.timeouts.mail)
        except ssl.SSLCertVerificationError as exc:
            await self._fail(dr.TLS_FAILED, "tls_verify", reason=exc.verify_message)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            await self._fail(dr.TLS_FAILED, "tls", reason=str(exc) or type(exc).__name__)
        ssl_object = self._writer.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            cipher = ssl_object.cipher()
            self.tls = {"tls": ssl_object.version() or "TLS",
                        "cipher": cipher[0] if cipher else ""}
        self.caps = Capabilities(esmtp=False)
        await self.hello(name)

    @property
    def alive(self) -> bool:
        """Usable, and the peer has not closed its side while the session sat idle."""
        return self.usable and not self._reader.at_eof()

    async def send(self, envelope: OutboundEnvelope, message: bytes) -> list[RecipientResult]:
        """Run one mail transaction; one result per recipient, in envelope order.

        A connection failure does not raise: it settles the open recipients as deferred
        and leaves `usable` False. Call again for the next message while `usable`.
        """
        if not self.usable:
            raise RuntimeError("send() on a session that failed or was closed")
        if self._needs_rset:
            await self._rset()
        transaction = MailTransaction(envelope, message, self.caps, remote=self.remote,
                                      details=self.tls)
        step = transaction.start()
        try:
            while step is not None:
                step = transaction.receive(await self._exchange(step))
        except SessionError as err:
            transaction.abort(err.reply)
        self._needs_rset = transaction.needs_rset
        self.uncertain = transaction.uncertain
        if transaction.closing or not self.usable:
            await self.close()
        return transaction.results()

    async def quit(self) -> None:
        """QUIT politely (errors ignored: the mail is already settled), then close."""
        if self.usable:
            with contextlib.suppress(SessionError):
                await self._command(b"QUIT\r\n", Phase.MAIL, "QUIT")
        await self.close()

    async def close(self) -> None:
        self.usable = False
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)

    # -- wire --------------------------------------------------------------------------------

    async def _rset(self) -> None:
        reply = await self._command(b"RSET\r\n", Phase.MAIL, "RSET")
        if not reply.positive:
            await self._fail(dr.UNEXPECTED_REPLY, "protocol", stage="RSET", reply=reply.text)
        self._needs_rset = False

    async def _exchange(self, step: Step) -> list[Reply]:
        """Write a step's data, then read its replies (stopping early after a 421)."""
        await self._write(step.data, step.write_phase)
        replies: list[Reply] = []
        for phase in step.replies:
            replies.append(await self._reply(phase, phase.value))
            if replies[-1].code == 421:
                break
        return replies

    async def _command(self, line: bytes, phase: Phase, stage: str) -> Reply:
        await self._write(line, phase)
        return await self._reply(phase, stage)

    async def _write(self, data: bytes, phase: Phase) -> None:
        view = memoryview(data)
        try:
            for start in range(0, len(view), BLOCK):
                self._writer.write(view[start:start + BLOCK])
                await asyncio.wait_for(self._writer.drain(), self.timeouts.of(phase))
        except TimeoutError:
            await self._fail(dr.TIMEOUT, "timeout", stage=f"sending, {phase.value}")
        except (OSError, ssl.SSLError):
            await self._fail(dr.CONNECTION_LOST, "lost", stage=f"sending, {phase.value}")

    async def _reply(self, phase: Phase, stage: str) -> Reply:
        """The next complete reply, waiting at most the phase's timeout for each read."""
        while not self._replies:
            try:
                data = await asyncio.wait_for(self._reader.read(READ_CHUNK),
                                              self.timeouts.of(phase))
            except TimeoutError:
                await self._fail(dr.TIMEOUT, "timeout", stage=stage)
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                await self._fail(dr.CONNECTION_LOST, "lost", stage=stage)
            try:
                self._replies.extend(self._parser.feed(data))
            except PeerProtocolError as exc:
                await self._fail(dr.PROTOCOL_ERROR, "protocol", stage=stage, reason=str(exc))
        return self._replies.popleft()

    async def _fail(self, template: str, kind: str, **fields: str) -> NoReturn:
        """Close the session and raise SessionError with the rendered reply."""
        await self.close()
        raise SessionError(dr.render(template, remote=self.remote, **fields), kind,
                           fields.get("reason", ""))
