"""How the IMAP driver performs each of the core's plans (`plan.py`): a command's output pulled
from a worker thread in batches, LOGIN and AUTHENTICATE (PLAIN, LOGIN, SASL-IR) through the
one login guard, STARTTLS, IDLE's polling loop, LOGOUT. The connection (`server.py`) owns the
socket; this module decides nothing the core has not planned.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING

from appliance.auth import sasl
from appliance.core import log
from appliance.core.memory import TRIM_AFTER, trim_after_burst
from appliance.imap import plan as plans
from appliance.imap import responses as r
from appliance.imap.commands.any_state import is_done, is_sasl_cancel
from appliance.imap.commands.base import ImapCommand
from appliance.imap.receiver import NEED_DATA, Command, RawLine, ReceiverError
from appliance.imap.session import ImapSession

if TYPE_CHECKING:
    from appliance.imap.server import ImapConnection

# Octets of a command's output pulled from the core at once. Each trip to the worker thread
# and back costs more than holding a megabyte: a FETCH of 100 whole messages goes in one.
RUN_BATCH = 1024 * 1024
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
    """The last `_TAIL` octets of the output so far (`before`, then `batch`)."""
    tail = before
    for chunk in batch:
        tail = chunk[-_TAIL:] if len(chunk) >= _TAIL else (tail + chunk)[-_TAIL:]
    return tail


def _start(session: ImapSession, command: ImapCommand
           ) -> tuple[Iterator[bytes], list[bytes], bool]:
    """Start a command and pull its first batch in one trip to the worker thread."""
    chunks = iter(session.run(command))
    batch, done = pull(chunks)
    return chunks, batch, done


def _close(chunks: Iterator[bytes] | None) -> None:
    """Stop a command's output early (its generator's cleanup may do store I/O)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class PlanRunner:
    """Performs the plans of one session over one connection."""

    def __init__(self, conn: ImapConnection, session: ImapSession) -> None:
        self.conn = conn
        self.session = session

    async def perform(self, command: Command) -> None:
        """Ask the core what `command` needs and do it (SessionEndedError: connection over)."""
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

    async def _run(self, command: ImapCommand) -> None:
        """Write the core's output batch by batch, each after the socket drained, so one
        client fetching a huge mailbox holds at most two batches in memory: the next batch
        is pulled in the worker thread while the last one goes out (a FETCH of whole
        messages reads files while the client reads the ones before)."""
        conn, chunks, tail, written, total = self.conn, None, b"", False, 0
        following: asyncio.Future[tuple[list[bytes], bool]] | None = None
        try:
            chunks, batch, done = await conn.in_thread(_start, self.session, command)
            while True:
                following = None if done else conn.start_in_thread(pull, chunks)
                size = sum(map(len, batch))
                if size:
                    await conn.write_all(batch)
                    written = True
                    total += size
                    tail = _tail(tail, batch)
                if following is None:
                    break
                batch, done = await following
                following = None
        except SessionEndedError:
            if following is not None:       # the generator cannot close while it runs
                await asyncio.wait([following])
            await conn.in_thread(_close, chunks)
            raise
        except Exception as exc:
            if following is not None:       # never leave the core running past the command
                await asyncio.wait([following])
            log.error("imap.command_failed", exc, client=conn.client_ip,
                      command=type(command).__name__)
            if written:          # mid-response: the client cannot be told anything sane
                raise SessionEndedError from exc
            tail = r.tagged_no(command.tag, r.SERVER_BUG, "SERVERBUG")
            await conn.write(tail)
        conn.note_status(command.tag, tail)
        if total >= TRIM_AFTER:       # megabytes went through the heap: give them back
            trim_after_burst(conn.config.executor)

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
