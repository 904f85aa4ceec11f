"""DATA and BDAT for every listener: the asyncio driver of `data_reader` and `chunking`.

aiosmtpd reads DATA one line per await (some 1,300 awaits for 100 KB); this layer reads the
StreamReader in big pieces and leaves every decision to the pure readers. The handler
contract stays aiosmtpd's: the message lands in `envelope.content` and
`envelope.original_content`, the handler's `handle_DATA` hook answers, then the envelope is
reset. While message octets are read the DATA timer runs, between commands the idle timer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiosmtpd.smtp import MISSING, syntax

from appliance.core import log
from appliance.smtp import replies
from appliance.smtp.body_checks import BodyLimits
from appliance.smtp.cached_init import CachedInitSMTP
from appliance.smtp.chunking import BdatCommand, ChunkedMessage, parse_bdat
from appliance.smtp.data_reader import (
    TERMINATOR,
    DataReader,
    MessageReceived,
    MessageRefused,
    NeedData,
)

# aiosmtpd's own words; a 3xx reply carries no enhanced status code (RFC 3463 has no class 3).
DATA_PROMPT = "354 End data with <CR><LF>.<CR><LF>"
CHUNK_READ = 256 * 1024   # the most octets of a BDAT chunk taken from the reader at once
T = TypeVar("T")


async def receive_data(reader: asyncio.StreamReader,
                       parser: DataReader) -> MessageReceived | MessageRefused:
    """Feed `parser` from `reader` up to the end of data, never reading past it."""
    event = parser.next_event()
    while isinstance(event, NeedData):
        parser.feed(await _read_towards_end(reader, parser.partial_terminator))
        event = parser.next_event()
    assert not parser.unused, "read past the end of data"
    return event


async def _read_towards_end(reader: asyncio.StreamReader, partial: int) -> bytes:
    """The next octets: all that is buffered, but never past the first end of data."""
    if partial:       # the end may be split over reads: take only what could complete it
        return await reader.readexactly(len(TERMINATOR) - partial)
    try:
        return await reader.readuntil(TERMINATOR)
    except asyncio.LimitOverrunError as overrun:   # more is buffered than one line's limit:
        return await reader.read(overrun.consumed)  # take it, except a possible end's start


async def receive_chunk(reader: asyncio.StreamReader, size: int,
                        sink: Callable[[bytes], None]) -> None:
    """Pass exactly `size` octets from `reader` to `sink`, in pieces of bounded size."""
    remaining = size
    while remaining:
        piece = await reader.read(min(remaining, CHUNK_READ))
        if not piece:
            raise asyncio.IncompleteReadError(b"", remaining)
        sink(piece)
        remaining -= len(piece)


def _discard(piece: bytes) -> None:
    """Sink for the octets of a chunk that is refused before it starts."""


def _log_unanswered_failure(delivery: asyncio.Future[Any]) -> None:
    """A delivery that went on after the client left failed: nobody else will hear of it."""
    if not delivery.cancelled() and delivery.exception() is not None:
        log.error("smtp.delivery_failed_after_hangup", delivery.exception())


class MessageTransfer(CachedInitSMTP):
    """aiosmtpd's SMTP with DATA read in bulk and CHUNKING (RFC 3030) added."""

    def __init__(self, *args: Any, data_timeout: float, max_line_length: int,
                 **kwargs: Any) -> None:
        self._chunks: ChunkedMessage | None = None
        super().__init__(*args, **kwargs)
        self._data_timeout = data_timeout
        self._body_limits = BodyLimits(self.data_size_limit or sys.maxsize, max_line_length)

    async def _transaction_ended(self) -> None:
        """Called after each end of data, delivered or not (a subclass may close)."""

    # -- DATA (RFC 5321 4.1.1.4) -----------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        refusal = self._data_refusal(arg)
        if refusal is not None:
            await self.push(refusal)
            return
        await self.push(DATA_PROMPT)
        event = await self._receive(receive_data(self._reader, DataReader(self._body_limits)))
        if isinstance(event, MessageRefused):
            self._refuse(event.error.value, event.reply)
            await self.push(event.reply)
        else:
            await self._deliver(event.content)
        await self._transaction_ended()

    def _data_refusal(self, arg: str | None) -> str | None:
        assert self.envelope is not None
        if self._chunks is not None:      # RFC 3030 3: DATA and BDAT do not mix
            self._chunks.fail(replies.DATA_AFTER_BDAT)
            return replies.DATA_AFTER_BDAT
        if not self.envelope.rcpt_tos:
            return replies.BAD_SEQUENCE_NEED_RCPT
        return replies.DATA_SYNTAX if arg else None

    # -- BDAT (RFC 3030) -------------------------------------------------------------------

    @syntax("BDAT chunk-size [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        command = parse_bdat(arg)
        if command is None:               # no size, so the octets cannot be told apart
            if self._chunks is not None:
                self._chunks.fail(replies.BDAT_SYNTAX)
            await self.push(replies.BDAT_SYNTAX)
            return
        refusal = self._bdat_refusal()
        if refusal is not None:           # no transaction: read the chunk, then refuse it
            await self._receive(receive_chunk(self._reader, command.size, _discard))
            await self.push(refusal)
            return
        message = self._chunks = self._chunks or ChunkedMessage(self._body_limits)
        await self._receive(receive_chunk(self._reader, command.size, message.add))
        await self._end_chunk(message, command)

    def _bdat_refusal(self) -> str | None:
        assert self.session is not None
        assert self.envelope is not None
        if not self.session.host_name:
            return replies.BAD_SEQUENCE_HELO
        if self._auth_required and not self.session.authenticated:
            return replies.AUTH_REQUIRED
        if not self.envelope.mail_from:
            return replies.BAD_SEQUENCE_NEED_MAIL
        if not self.envelope.rcpt_tos:
            return replies.BAD_SEQUENCE_NEED_RCPT
        return None

    async def _end_chunk(self, message: ChunkedMessage, command: BdatCommand) -> None:
        failure = message.end_chunk(command.last)
        if not command.last:
            await self.push(failure or replies.CHUNK_RECEIVED.format(octets=command.size))
            return
        if failure is None:
            await self._deliver(message.content())
        else:
            self._refuse("bdat", failure)
            await self.push(failure)
        await self._transaction_ended()

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if self._chunks is not None:      # the recipients were fixed by the first chunk
            await self.push(replies.RCPT_AFTER_BDAT)
            return
        await super().smtp_RCPT(arg)

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        status = await super()._call_handler_hook(command, *args)
        if command == "EHLO" and isinstance(status, list) and status:
            status = [*status[:-1], "250-CHUNKING", status[-1]]   # RFC 3030 2
        return status

    # -- shared ----------------------------------------------------------------------------

    async def _receive(self, reading: Awaitable[T]) -> T:
        """Await `reading` under the DATA timer, then go back to the idle timer."""
        self._reset_timeout(self._data_timeout)
        try:
            return await reading
        finally:
            if self.transport is not None:
                self._reset_timeout()

    async def _deliver(self, content: bytes) -> None:
        """Hand the message to the handler's DATA hook and send its reply."""
        assert self.envelope is not None
        self.envelope.content = self.envelope.original_content = content
        # A whole message is delivered (and logged) even if the client hangs up now:
        # aiosmtpd cancels the session at EOF, which must not cut the delivery short.
        delivery = asyncio.ensure_future(self._call_handler_hook("DATA"))
        try:
            status = await asyncio.shield(delivery)
        except asyncio.CancelledError:
            delivery.add_done_callback(_log_unanswered_failure)
            raise
        finally:
            self._set_post_data_state()
        await self.push(replies.OK if status is MISSING else status)

    def _refuse(self, reason: str, reply: str) -> None:
        """Log a message refused for its content, and forget the transaction."""
        assert self.session is not None
        peer: Any = self.session.peer
        log.event("smtp.message_refused", client=peer[0] if isinstance(peer, tuple) else peer,
                  reason=reason, reply=reply[:3])
        self._set_post_data_state()

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()   # type: ignore[no-untyped-call]
        self._chunks = None
