"""The IMAP listeners: `listen.imap_port` (143: STARTTLS) and `listen.imaps_port` (993: implicit
TLS, RFC 8314 3.3), a thin asyncio driver around `session.ImapSession` (see `plan` for the seam).

The driver owns what the core must not: sockets, the TLS handshakes, the timers (a short
`imap.login_timeout` before login, the `imap.autologout` timer after it, RFC 9051 5.4),
connection limits (the SMTP `ConnectionTracker`, shared by both ports, plus a count per
account), the bad-command limit, and backpressure: a command's output is pulled from the core
in a worker thread in batches of `RUN_BATCH` octets (the next one while the last goes out) --
or, for cheap commands that only read what the store holds, on the event loop within a
budget (`server_inline`), right in `data_received` when the connection's task is waiting
for a command of a logged-in client (the direct path: no task wake-up per NOOP) -- each
written only when the socket has drained, and reading pauses while unprocessed input piles
up. The SASL exchanges and IDLE are
in `server_plans` (how each plan is performed), the settings in `server_config`, the socket
plumbing shared with POP3 (buffering, drain, STARTTLS, tracker) in `net.stream`; this module
is the IMAP connection on top of it and the listeners.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from appliance.auth.guard import LoginGuard
from appliance.core import log
from appliance.core.memory import fix_mmap_threshold
from appliance.imap import fast_lane
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
from appliance.imap.server_inline import INLINE_SLICE
from appliance.imap.server_plans import (
    BYE_AUTOLOGOUT,
    Begun,
    Handed,
    Planned,
    PlanRunner,
    SessionEndedError,
)
from appliance.imap.session import ImapSession
from appliance.net.stream import StreamConnection, is_loopback, listen
from appliance.settings import Settings
from appliance.smtp import replies as smtp_replies
from appliance.smtp.connections import Listener
from appliance.storage.mailbox_api import MailStores

T = TypeVar("T")

MAX_UNREAD = 256 * 1024      # received but not yet handed to the receiver: pause reading
_LANE_NAMES = frozenset({"NOOP", "FETCH", "UID"})    # what `fast_lane.LINE` can match
LANE_PEEK = 16 * 1024        # queued octets offered to the fast lane at once

# The driver's own lines (the core's catalogue is `responses`).
CONTINUE_LITERAL = r.continuation("Ready for literal")
BYE_TOO_MANY_BAD = r.untagged_bye("Too many invalid commands")
BYE_SHUTTING_DOWN = r.untagged_bye("Server shutting down, try again later")
BYE_TOO_MANY_CONNECTIONS = r.untagged_bye("[UNAVAILABLE] Too many connections, try again later")
BYE_TOO_MANY_FROM_YOU = r.untagged_bye(
    "[UNAVAILABLE] Too many connections from your address, try again later")


class ImapConnection(StreamConnection):
    """One client connection: frames commands, performs the core's plans, keeps the timers."""

    max_unread = MAX_UNREAD
    log_name = "imap"

    def __init__(self, config: ImapListenerConfig, implicit_tls: bool) -> None:
        super().__init__(config.tracker, config.tls)
        self.config = config
        self.implicit_tls = implicit_tls
        self.receiver = Receiver(config.pre_auth_limits)
        self.account: str | None = None
        self._bad = 0
        # The direct path (`data_received`): set while the task waits for a command; what
        # the callback could not finish, for the task; when it last took input (the
        # autologout timer of the parked task then counts from there).
        self._runner: PlanRunner | None = None
        self._awaiting_command = False
        self._handed: Handed | Event | None = None
        self._last_input = 0.0

    def goodbye(self, smtp_reply: str) -> bytes:
        return _imap_refusal(smtp_reply)

    # -- I/O the session parts share -----------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write once the socket has drained; SessionEndedError when the connection is gone
        (also when the client has read nothing for the idle timeout: `drained`)."""
        await self.write_all((data,))

    async def write_all(self, chunks: Sequence[bytes]) -> None:
        """`write` for a batch of chunks: one wait for the socket, then the chunks handed
        to the transport together as they are (no join: a FETCH of whole messages is
        megabytes; uvloop sends them with one writev)."""
        timeout = self.config.autologout if self.account else self.config.login_timeout
        transport = await self.drained(timeout)
        if transport is None:
            raise SessionEndedError
        _write(transport, chunks)

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking store work in the engine's pool (never on the event loop)."""
        return await self.start_in_thread(function, *args)

    def write_now(self, chunks: Sequence[bytes]) -> None:
        """Hand `chunks` to the transport without waiting for it to drain (callers stop
        when `write_paused`); SessionEndedError when the connection is gone."""
        transport = self._transport
        if self._closed or transport is None:
            raise SessionEndedError
        _write(transport, chunks)

    @property
    def write_paused(self) -> bool:
        """The transport holds more than it wants: wait for it to drain before writing."""
        return self._paused

    def start_in_thread(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`in_thread`, started now: the future to await later. Counted against the
        account (`server_inline.ThreadJobs`) until it is done: meanwhile it may hold the
        store's lock, so no command of the account runs on the loop."""
        future = asyncio.get_running_loop().run_in_executor(self.config.executor, function,
                                                            *args)
        account = self.account
        if account is not None:
            jobs = self.config.thread_jobs
            jobs.started(account)
            future.add_done_callback(lambda _done: jobs.finished(account))
        return future

    async def receive(self, timeout: float) -> bytes | None:
        """What the client sent, None after `timeout` silent seconds; SessionEndedError at EOF."""
        try:
            data = await self.read_input(timeout)
        except TimeoutError:
            return None
        if data is None:
            raise SessionEndedError
        return data

    async def next_event(self, timeout: float, rearm_on_data: bool) -> Event | Handed:
        """The receiver's next event, or what the direct path handed over. Silence for
        `timeout` seconds (from now, or from the last octets with `rearm_on_data`) ends the
        connection with BYE: before login a command must be complete in time, so a
        slowloris client cannot trickle forever."""
        loop = self.loop
        deadline = loop.time() + timeout
        while (event := self._next()) is NEED_DATA:
            data = await self.receive(deadline - loop.time())
            if data is None:
                if rearm_on_data and self._last_input + timeout > loop.time():
                    deadline = self._last_input + timeout   # answered in `data_received`
                    continue
                log.event("imap.autologout", client=self.client_ip, timeout=timeout)
                await self.write(BYE_AUTOLOGOUT)
                raise SessionEndedError
            if rearm_on_data:
                deadline = loop.time() + timeout
            self.receiver.feed(data)
        return event

    def _next(self) -> Event | Handed:
        handed, self._handed = self._handed, None
        return handed if handed is not None else self.receiver.next_event()

    # -- the direct path ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """While the task waits for a command of a logged-in client, frame and answer what
        `server_inline` allows right here: a NOOP or a FETCH of one message costs less than
        waking the task (a future, a timer, a trip through the loop). The first event it
        cannot finish is handed to the task, and the rest stays in the receiver."""
        reading = self._reading
        if (self._awaiting_command and reading is not None and not reading.done()
                and not self._unread
                and self._handed is None and self._runner is not None
                and self.account is not None and not self._paused and not self._closed):
            self._direct(self._runner, data)
        else:
            super().data_received(data)

    def _direct(self, runner: PlanRunner, data: bytes) -> None:
        try:
            if self._answer_directly(runner, data):
                return                          # all answered; the task waits on
        except SessionEndedError:
            self._send_and_close(b"")
            return
        except Exception as exc:
            log.error("imap.internal_error", exc, client=self.client_ip)
            self._send_and_close(b"")
            return
        super().data_received(b"")              # wake the task for the rest

    def _answer_directly(self, runner: PlanRunner, data: bytes) -> bool:
        """`data`'s commands answered in the callback: by the fast lane first (between
        commands), then framed and through `PlanRunner.direct`; True when all were, False
        when the rest is left in the receiver (or handed over) for the task."""
        loop = self.loop
        self._last_input = self.slice_start = start = loop.time()
        if self.config.fast_lane and self.receiver.idle:
            taken = fast_lane.serve(runner, data, start + INLINE_SLICE)
            if taken == len(data):
                return True
            data = data[taken:]
            if taken and (loop.time() - start >= INLINE_SLICE or self._paused):
                self.receiver.feed(data)        # the rest in the task, in turn
                return False
        self.receiver.feed(data)
        while (event := self.receiver.next_event()) is not NEED_DATA:
            handed = runner.direct(event) if isinstance(event, Command) else event
            if handed is not None:
                self._handed = handed
                return False
            assert isinstance(event, Command)
            for literal in event.literals:
                literal.close()
            if loop.time() - start >= INLINE_SLICE:
                return False                    # pipelined: the rest in the task, in turn
        return True

    async def next_line(self, session: ImapSession) -> RawLine | ReceiverError:
        """A raw client line (SASL responses, IDLE's DONE) under the session's timer."""
        self.receiver.expect_line()
        event = await self.next_event(*self._timer(session))
        assert isinstance(event, RawLine | ReceiverError)
        return event

    async def start_tls(self) -> None:
        """RFC 9051 6.2.1: the handshake right after the OK; a fresh receiver with the
        pre-auth limits (STARTTLS is pre-auth only) for what comes over TLS."""
        self.receiver = Receiver(self.config.pre_auth_limits)
        await self.upgrade_tls()

    # -- the session ---------------------------------------------------------------------

    async def serve(self) -> None:
        session = ImapSession(self.config.stores, self.config.session,
                              secure=self.implicit_tls, client_ip=self.client_ip,
                              loopback=is_loopback(self.client_ip))
        try:
            await self.write(session.greeting())
            self._runner = PlanRunner(self, session)
            await self._converse(session, self._runner)
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
            self._awaiting_command = True
            try:
                event = await self.next_event(*self._timer(session))
            finally:
                self._awaiting_command = False
            if isinstance(event, Planned | Begun):
                await self._perform(driver, event.received, event)
            elif isinstance(event, ContinuationRequest):
                await self.write(CONTINUE_LITERAL)
            elif isinstance(event, ReceiverError):
                reply = CommandError(event.tag, event.text, event.status, event.code).reply()
                await self.answered(event.tag, reply)
                if event.fatal:         # the receiver cannot get back in step: end it
                    self._send_and_close(r.untagged_bye(r.PROTOCOL_ERROR))
                    return
            elif isinstance(event, Command) and not await self._lane(driver, event):
                await self._perform(driver, event, None)

    async def _lane(self, runner: PlanRunner, received: Command) -> bool:
        """A command the task got from the receiver (it came while an answer was still
        going out, or behind one the fast lane declined) through `fast_lane` when it is of
        its shape; True when answered. A client that reads slower than we answer (mbsync
        writes each message to disk) keeps the socket full: wait for it to drain first --
        the answer could not go out before -- instead of sending the command to a thread."""
        if (received.literals or not self.config.fast_lane or self.account is None
                or received.name not in _LANE_NAMES):
            return False
        line = b"%s %s %s\r\n" % (received.tag.encode(), received.name.encode(),
                                    received.args) if received.args else \
            b"%s %s\r\n" % (received.tag.encode(), received.name.encode())
        if fast_lane.LINE.fullmatch(line) is None:
            return False
        if self._paused:
            await self.write_all(())
        deadline = self.loop.time() + INLINE_SLICE
        if fast_lane.serve(runner, line, deadline) != len(line):
            return False
        # The commands queued behind it, in one burst (one lock hold, one writev).
        queued = self.receiver.buffered_commands(LANE_PEEK)
        if queued:
            self.receiver.consume(fast_lane.serve(runner, queued, deadline))
        return True

    async def _perform(self, driver: PlanRunner, received: Command,
                       handed: Handed | None) -> None:
        try:
            self.busy = True
            if isinstance(handed, Begun):
                await driver.resume(handed)
            else:
                await driver.perform(received, handed.plan if handed is not None else None)
        finally:
            self.busy = False
            for literal in received.literals:
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
        if b" BAD " not in tail:        # most answers: no need to find the last line
            self._bad = 0
            return
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


def _write(transport: asyncio.WriteTransport, chunks: Sequence[bytes]) -> None:
    """One chunk with `write` (its direct send), several with `writelines` (uvloop sends
    them with one writev, without joining them)."""
    if len(chunks) == 1:
        transport.write(chunks[0])
    elif chunks:
        transport.writelines(chunks)


def _imap_refusal(smtp_reply: str) -> bytes:
    """The tracker answers in SMTP; say the same as an IMAP BYE (RFC 9051 7.1.5)."""
    return {smtp_replies.TOO_MANY_FROM_YOU: BYE_TOO_MANY_FROM_YOU,
            smtp_replies.TOO_MANY_CONNECTIONS: BYE_TOO_MANY_CONNECTIONS}.get(
                smtp_reply, BYE_SHUTTING_DOWN)


# -- the listeners ---------------------------------------------------------------------------

async def start_imap(settings: Settings, executor: Executor, guard: LoginGuard,
                     stores: MailStores, tls: ssl.SSLContext) -> list[Listener]:
    """Bind both IMAP listeners."""
    fix_mmap_threshold()        # logins and big FETCHes must not pin megabytes in arenas
    config = listener_config(settings, executor, guard, stores, tls)
    address = settings.get_str("listen.address")
    return await bind(config, address, settings.get_int("listen.imap_port"),
                      settings.get_int("listen.imaps_port"))


async def bind(config: ImapListenerConfig, address: str, imap_port: int,
               imaps_port: int) -> list[Listener]:
    """Listen on `imap_port` (STARTTLS) and `imaps_port` (implicit TLS) with `config`."""
    return [await listen(name, _factory(config, implicit), address, port, config.tracker,
                         config.tls if implicit else None)
            for name, port, implicit in (("imap", imap_port, False),
                                         ("imaps", imaps_port, True))]


def _factory(config: ImapListenerConfig, implicit: bool) -> Callable[[], ImapConnection]:
    return lambda: ImapConnection(config, implicit)
