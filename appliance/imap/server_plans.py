"""How the IMAP driver performs each of the core's plans (`plan.py`): a command's output pulled
from a worker thread in batches, or made on the event loop when `server_inline` allows it --
then right in the protocol callback when the connection's task is waiting for a command
(`PlanRunner.direct`, no task wake-up), what is left handed to the task (`Begun`, `Planned`);
LOGIN and AUTHENTICATE (PLAIN, LOGIN, SASL-IR) through the one login guard, STARTTLS, IDLE's
polling loop, LOGOUT. The connection (`server.py`) owns the socket; this module decides
nothing the core has not planned.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.auth import sasl
from appliance.core import log
from appliance.core.memory import TRIM_AFTER, trim_after_burst
from appliance.imap import plan as plans
from appliance.imap import responses as r
from appliance.imap import server_inline as inline
from appliance.imap.commands.any_state import is_done, is_sasl_cancel
from appliance.imap.commands.base import ImapCommand
from appliance.imap.receiver import NEED_DATA, Command, RawLine, ReceiverError
from appliance.imap.session import ImapSession

if TYPE_CHECKING:
    from appliance.imap.server import ImapConnection

# Octets of a command's output pulled from the core at once. Each trip to the worker thread
# and back costs more than holding a megabyte: a FETCH of 100 whole messages goes in one.
RUN_BATCH = 1024 * 1024
COALESCE = 64 * 1024         # inline output gathered up to this before a write
_TAIL = 1024                 # end of a command's output kept to see its tagged status

# The driver's own texts (the core's catalogue is `responses`).
BYE_AUTOLOGOUT = r.untagged_bye("Autologout; idle for too long")
TOO_MANY_FOR_ACCOUNT = "Too many connections for this account"
AUTH_CANCELLED = "Authentication cancelled"
AUTH_INVALID = "Invalid SASL response"


class SessionEndedError(Exception):
    """The connection is over: the client left, timed out or was told BYE."""


class _CancelledError(Exception):
    """The client answered a SASL challenge with "*" (RFC 9051 6.2.2)."""


def pull(chunks: Iterator[bytes], limit: int = RUN_BATCH) -> tuple[list[bytes], bool]:
    """Up to about `limit` octets of output (blocking: in a worker thread); True when done."""
    batch: list[bytes] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= limit:
            return batch, False
    return batch, True


def _tail(before: bytes, batch: list[bytes]) -> bytes:
    """The last `_TAIL` octets of the output so far (`before`, then `batch`), from the
    last chunks only (a batch of whole messages has hundreds)."""
    parts: list[bytes] = []
    need = _TAIL
    for chunk in reversed(batch):
        parts.append(chunk[-need:])
        need -= len(chunk)
        if need <= 0:
            break
    else:
        parts.append(before[-need:])
    parts.reverse()
    return b"".join(parts)


def _start(session: ImapSession, command: ImapCommand
           ) -> tuple[Iterator[bytes], list[bytes], bool, inline.Token | None]:
    """Start a command and pull its first batch in one trip to the worker thread; the
    folder's change token from before it ran (`server_inline.unchanged`)."""
    token = inline.token_now(session)
    chunks = iter(session.run(command))
    batch, done = pull(chunks)
    return chunks, batch, done, token


def _close(chunks: Iterator[bytes] | None) -> None:
    """Stop a command's output early (its generator's cleanup may do store I/O)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class _Output:
    """What a command has written so far: whether anything, how much, its last octets."""

    def __init__(self) -> None:
        self.written = False
        self.total = 0
        self.tail = b""

    async def write(self, conn: ImapConnection, batch: list[bytes]) -> None:
        """Write `batch` once the socket has drained; small chunks joined first (one send,
        not one per line)."""
        batch, size = _coalesced(batch)
        if size:
            await conn.write_all(batch)
            self._wrote(batch, size)

    def write_now(self, conn: ImapConnection, batch: list[bytes]) -> None:
        """`write` without waiting (on the loop, the transport buffers what the socket does
        not take; the caller stops once the transport asks for a pause)."""
        batch, size = _coalesced(batch)
        if size:
            conn.write_now(batch)
            self._wrote(batch, size)

    def _wrote(self, batch: list[bytes], size: int) -> None:
        self.written = True
        self.total += size
        self.tail = _tail(self.tail, batch)


def _coalesced(batch: list[bytes]) -> tuple[list[bytes], int]:
    """`batch` as one chunk when it is small, and its size."""
    size = sum(map(len, batch))
    if len(batch) > 1 and size <= COALESCE:
        return [b"".join(batch)], size
    return batch, size


class _Running:
    """A command's output generator, the worker-thread pull under way, if any, and the end
    of its time on the loop (`server_inline.INLINE_BUDGET` from its start)."""

    def __init__(self) -> None:
        self.chunks: Iterator[bytes] | None = None
        self.following: asyncio.Future[tuple[list[bytes], bool]] | None = None
        self.deadline = 0.0
        self.paused = False         # stopped on the loop only until the socket drains

    def start(self, chunks: Iterator[bytes], now: float) -> None:
        """`now`: the loop's time."""
        self.chunks = chunks
        self.deadline = now + inline.INLINE_BUDGET

    async def settle(self) -> None:
        """Wait for the pull under way: the generator cannot close while it runs."""
        if self.following is not None:
            await asyncio.wait([self.following])
            self.following = None


@dataclass(frozen=True)
class Planned:
    """A command planned in the protocol callback (`PlanRunner.direct`) that only the
    connection's task can perform (it waits: a thread, the login guard, TLS, IDLE)."""

    received: Command
    plan: plans.Plan


@dataclass(frozen=True)
class Begun:
    """A `Run` command begun in the protocol callback whose rest goes on in the task: on the
    loop once the socket has drained (`running.paused`), else -- the budget was spent or the
    store's lock was busy -- in a worker thread."""

    received: Command
    command: ImapCommand
    running: _Running
    out: _Output


Handed = Planned | Begun


class PlanRunner:
    """Performs the plans of one session over one connection."""

    def __init__(self, conn: ImapConnection, session: ImapSession) -> None:
        self.conn = conn
        self.session = session
        self._token: inline.Token | None = None    # see `server_inline.unchanged`

    @property
    def change_token(self) -> inline.Token | None:
        """The folder's change token from before the last command run in a worker thread
        (`server_inline.unchanged`)."""
        return self._token

    async def perform(self, command: Command, plan: plans.Plan | None = None) -> None:
        """Ask the core what `command` needs (unless `plan` says already) and do it
        (SessionEndedError: connection over)."""
        if plan is None:
            plan = self.session.plan(command)
        if isinstance(plan, plans.Run):
            await self._run(plan.command)
        elif isinstance(plan, plans.Reply):
            await self.conn.answered(command.tag, plan.data)
        elif isinstance(plan, plans.Login):
            await self._login(plan.tag, plan.username, plan.password)
        elif isinstance(plan, plans.Authenticate):
            await self._authenticate(plan)
        elif isinstance(plan, plans.StartTls):
            await self.conn.write(plan.reply)
            await self.conn.start_tls()
            self.session.tls_started()
            self.conn.note_status(plan.tag, plan.reply)
        elif isinstance(plan, plans.Idle):
            await self._idle(plan)
        else:
            await self.conn.write(plan.reply)
            raise SessionEndedError

    # -- Run ---------------------------------------------------------------------------------

    def direct(self, received: Command) -> Handed | None:
        """Plan `received` in the protocol callback and, when `server_inline` allows it,
        answer it right there (no await: the task stays parked, no wake-up, no timer).
        None when answered; else what the task must do (`Planned`, or `Begun` for the rest
        of an answer). SessionEndedError when the answer ended the connection."""
        plan = self.session.plan(received)
        lock = self._inline_lock(plan.command) if isinstance(plan, plans.Run) else None
        if lock is None:
            return Planned(received, plan)
        assert isinstance(plan, plans.Run)
        command, out, running = plan.command, _Output(), _Running()
        self.conn.config.thread_jobs.direct += 1
        try:
            running.start(iter(self.session.run(command)), self.conn.loop.time())
            done = self._inline_now(running, out, lock)
        except SessionEndedError:
            raise
        except Exception as exc:
            self._failed(command, exc, out)
            self.conn.write_now([out.tail])
            done = True
        if not done:
            return Begun(received, command, running, out)
        self._finish(command, out)
        return None

    async def resume(self, begun: Begun) -> None:
        """Finish a command `direct` began (on the loop or in a worker thread, as `_run`
        would)."""
        await self._run(begun.command, begun)

    async def _run(self, command: ImapCommand, begun: Begun | None = None) -> None:
        """Answer a `Run` command: on the event loop when `server_inline` allows it, else --
        or for what is left once the inline budget is spent -- in a worker thread."""
        conn = self.conn
        out, running = (begun.out, begun.running) if begun else (_Output(), _Running())
        try:
            done = False
            lock = self._inline_lock(command) if begun is None else None
            if lock is not None:
                running.start(iter(self.session.run(command)), self.conn.loop.time())
                done = await self._inline(running, out, lock)
            elif begun is not None and running.paused:
                done = await self._inline(running, out)
            if not done:
                await self._threaded(command, running, out)
        except SessionEndedError:
            await running.settle()
            await conn.in_thread(_close, running.chunks)
            raise
        except Exception as exc:
            await running.settle()          # never leave the core running past the command
            self._failed(command, exc, out)
            await conn.write(out.tail)
        self._finish(command, out)

    def _failed(self, command: ImapCommand, exc: Exception, out: _Output) -> None:
        """A bug in the core: log it; the answer becomes a tagged NO (`out.tail`, for the
        caller to write), or the end of the connection when some of it was written."""
        log.error("imap.command_failed", exc, client=self.conn.client_ip,
                  command=type(command).__name__)
        if out.written:      # mid-response: the client cannot be told anything sane
            raise SessionEndedError from exc
        out.tail = r.tagged_no(command.tag, r.SERVER_BUG, "SERVERBUG")

    def _finish(self, command: ImapCommand, out: _Output) -> None:
        conn = self.conn
        conn.note_status(command.tag, out.tail)
        if out.total >= TRIM_AFTER:       # megabytes went through the heap: give them back
            trim_after_burst(conn.config.executor)

    def _inline_lock(self, command: ImapCommand) -> inline.StoreLock | None:
        """The account's store lock, held, when `server_inline` lets `command` run on the
        loop now; else None. The first pull of the command's output is made in this hold
        (`_inline_now`), so the sync that ends a small command reuses the change check just
        made here (`AccountMail.try_lock`) instead of looking again."""
        conn = self.conn
        if not (inline.eligible(self.session, command) and not conn.write_paused
                and conn.config.thread_jobs.idle(conn.account)):
            return None
        lock = inline.StoreLock(self.session.account)
        if not lock.take():
            return None
        if not inline.unchanged(self.session, self._token):     # never raises
            lock.give()
            return None
        return lock

    async def _inline(self, running: _Running, out: _Output,
                      held: inline.StoreLock | None = None) -> bool:
        """`_inline_now` from the connection's task, waiting for the socket to drain when it
        asks for a pause (meanwhile other connections run); a client pipelining commands
        answered on the loop gives the others their turn after `INLINE_SLICE`.

        The time spent waiting for the client to read is not work on the loop: the budget
        (`running.deadline`) moves on by it. Otherwise a client that parses as it reads
        (imaplib, a FETCH of 100 whole messages) spent the command's budget in those waits,
        and the rest went to a worker thread as one batch of up to `RUN_BATCH` octets made
        before any of it was sent, while the client sat idle."""
        conn, loop = self.conn, self.conn.loop
        while not self._inline_now(running, out, held):
            held = None
            if not running.paused:
                return False
            paused_at = loop.time()
            await conn.write_all(())
            running.deadline += loop.time() - paused_at
        if loop.time() - conn.slice_start >= inline.INLINE_SLICE:
            await asyncio.sleep(0)          # pipelined commands: the others' turn
            conn.slice_start = loop.time()
        return True

    def _inline_now(self, running: _Running, out: _Output,
                    held: inline.StoreLock | None = None) -> bool:
        """Drive the core's output on the loop, writing it as it comes (the client reads
        while the rest is made); False when the socket asked for a pause (`running.paused`:
        go on once it drained), or the budget is spent or a thread may hold the account's
        lock: the rest is for a worker thread. `held`: the lock `_inline_lock` has just
        taken (its checks made then).

        The account's lock is held from the first pull to the return, at most the budget
        and one chunk: other threads wait that long for it, and no IMAP thread job of the
        account can start meanwhile (only the loop starts them), so `ThreadJobs` is asked
        once, and the command's closing sync can reuse the change check `_inline_lock`
        made (`AccountMail.try_lock`)."""
        conn, chunks = self.conn, running.chunks
        assert chunks is not None
        loop, deadline = conn.loop, running.deadline
        running.paused = False
        lock = held
        if lock is None:
            lock = inline.StoreLock(self.session.account)
            if (loop.time() >= deadline or not conn.config.thread_jobs.idle(conn.account)
                    or not lock.take()):
                return False
        pending: list[bytes] = []
        size = 0
        try:
            while (chunk := next(chunks, None)) is not None:
                pending.append(chunk)
                size += len(chunk)
                if size >= COALESCE:
                    out.write_now(conn, pending)
                    pending, size = [], 0
                    if conn.write_paused:
                        running.paused = True
                        return False
                if loop.time() >= deadline:
                    out.write_now(conn, pending)
                    return False
            out.write_now(conn, pending)
            return True
        finally:
            lock.give()

    async def _threaded(self, command: ImapCommand, running: _Running, out: _Output) -> None:
        """Write the core's output batch by batch, each after the socket drained, so one
        client fetching a huge mailbox holds at most two batches in memory: the next batch
        is pulled in the worker thread while the last one goes out (a FETCH of whole
        messages reads files while the client reads the ones before)."""
        conn = self.conn
        if running.chunks is None:
            running.chunks, batch, done, self._token = await conn.in_thread(
                _start, self.session, command)
        else:                               # begun on the loop
            batch, done = await conn.in_thread(pull, running.chunks)
        while True:
            running.following = None if done else conn.start_in_thread(pull, running.chunks)
            await out.write(conn, batch)
            if running.following is None:
                break
            batch, done = await running.following
            running.following = None
        conn.slice_start = conn.loop.time()

    # -- LOGIN and AUTHENTICATE --------------------------------------------------------------

    async def _login(self, tag: str, username: str, password: str) -> None:
        conn = self.conn
        result = await conn.config.guard.login(username, password, client_ip=conn.client_ip,
                                               protocol="imap")
        trim_after_burst(conn.config.executor)      # the password hash took megabytes
        if not result.ok or result.account is None:
            await conn.answered(tag, self.session.login_failed(tag, result))
            return
        if not conn.claim_account(result.account):
            log.event("imap.account_connections_exceeded", client=conn.client_ip,
                      account=result.account)
            await conn.answered(tag, r.tagged_no(tag, TOO_MANY_FOR_ACCOUNT, "LIMIT"))
            return
        try:
            reply = await conn.in_thread(self.session.logged_in, tag, result.account)
            conn.receiver.limits = conn.config.limits     # APPEND's literals from now on
        except Exception as exc:       # the store cannot open the account's mail
            log.error("imap.open_failed", exc, account=result.account)
            conn.release_account()
            reply = r.tagged_no(tag, r.AUTH_UNAVAILABLE, "UNAVAILABLE")
        await conn.answered(tag, reply)

    async def _authenticate(self, plan: plans.Authenticate) -> None:
        try:
            username, password = await self._sasl(plan)
        except _CancelledError:
            await self.conn.answered(plan.tag, r.tagged_bad(plan.tag, AUTH_CANCELLED))
            return
        except sasl.SaslError:
            await self.conn.answered(plan.tag, r.tagged_bad(plan.tag, AUTH_INVALID))
            return
        await self._login(plan.tag, username, password)

    async def _sasl(self, plan: plans.Authenticate) -> tuple[str, str]:
        """The credentials of a PLAIN (RFC 4616) or LOGIN exchange; SASL-IR (RFC 4959)
        answers the first challenge in the command itself."""
        first = plan.initial
        if plan.mechanism == "PLAIN":
            credentials = sasl.parse_plain(first if first is not None else
                                           await self._response(b""))
            return credentials.username, credentials.password
        username = sasl.parse_login_username(
            first if first is not None else await self._response(sasl.LOGIN_USERNAME_CHALLENGE))
        password = sasl.parse_login_password(
            await self._response(sasl.LOGIN_PASSWORD_CHALLENGE))
        return username, password

    async def _response(self, challenge: bytes) -> bytes:
        """Send `+ <base64 challenge>` and decode the client's answer (RFC 9051 6.2.2)."""
        await self.conn.write(b"+ " + base64.b64encode(challenge) + b"\r\n")
        event = await self.conn.next_line(self.session)
        if isinstance(event, ReceiverError):
            raise sasl.SaslError(event.text)
        if is_sasl_cancel(event.line):
            raise _CancelledError
        return sasl.decode_response(event.line.decode("ascii", "replace"))

    # -- IDLE --------------------------------------------------------------------------------

    async def _idle(self, plan: plans.Idle) -> None:
        """RFC 2177: updates every `poll_interval` until DONE. The autologout timer is
        re-armed by anything the client sends; an idling session does not hold up shutdown."""
        conn, loop = self.conn, asyncio.get_running_loop()
        await conn.write(plan.reply)
        conn.busy = False
        timeout = conn.config.autologout
        deadline, next_poll = loop.time() + timeout, loop.time() + plan.poll_interval
        conn.receiver.expect_line()
        while (event := conn.receiver.next_event()) is NEED_DATA:
            now = loop.time()
            if now >= deadline:
                await conn.write(BYE_AUTOLOGOUT)
                raise SessionEndedError
            if now >= next_poll:
                updates = await conn.in_thread(self.session.idle_poll)
                if updates:
                    await conn.write(updates)
                next_poll = loop.time() + plan.poll_interval
                continue
            data = await conn.receive(min(next_poll, deadline) - now)
            if data is not None:
                deadline = loop.time() + timeout
                conn.receiver.feed(data)
        conn.busy = True
        done = isinstance(event, RawLine) and is_done(event.line)
        await conn.answered(plan.tag, self.session.idle_done(plan.tag, bad=not done))
