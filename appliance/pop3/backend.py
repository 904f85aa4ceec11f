"""Performs the POP3 core's actions: logins through the guard, the maildrop through the store.

One `Pop3Backend` per process (the login guard counts failures in memory, so POP3 runs in
the primary engine process only); one `SessionBackend` per connection, which holds the
account's POP3 lock from login until `close` (RFC 1939 8: the maildrop is locked for the
session; a second session gets `[IN-USE]`). Store calls block, so they run in the
executor. The lock is a file lock (`storage.maildir.locks`): it is taken in the executor
and released on the event loop (closing a descriptor), so a session that ends while the
engine stops still lets go of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from typing import TypeVar

from appliance.auth.guard import LoginGuard, Outcome
from appliance.core import log
from appliance.pop3.actions import (
    Action,
    Login,
    LoginAnswer,
    LoginStatus,
    MaildropAnswer,
    MaildropProblem,
    MessageAnswer,
    OpenMaildrop,
    ReadMessage,
    RemoveAnswer,
    RemoveMessages,
    Result,
)
from appliance.storage.mailbox_api import INBOX, AccountMail, FolderInUseError, MailStores

PROTOCOL = "pop3"
LOCK_PURPOSE = "pop3"
_T = TypeVar("_T")

_STATUS = {Outcome.ACCEPTED: LoginStatus.ACCEPTED, Outcome.REJECTED: LoginStatus.REJECTED,
           Outcome.LOCKED: LoginStatus.LOCKED, Outcome.UNAVAILABLE: LoginStatus.UNAVAILABLE}


class Pop3Backend:
    """What every POP3 session of the process shares."""

    def __init__(self, guard: LoginGuard, stores: MailStores, executor: Executor) -> None:
        self.guard = guard
        self.stores = stores
        self.executor = executor

    def session(self, client_ip: str) -> SessionBackend:
        return SessionBackend(self, client_ip)


class SessionBackend:
    """The actions of one POP3 session, and its maildrop lock."""

    def __init__(self, shared: Pop3Backend, client_ip: str) -> None:
        self._shared = shared
        self.client_ip = client_ip
        self.account: str | None = None
        self._mail: AccountMail | None = None
        self._lock: AbstractContextManager[None] | None = None

    async def perform(self, action: Action) -> Result:
        """Do what the core asked; store and guard failures become answers, never raise."""
        if isinstance(action, Login):
            return await self._login(action)
        if isinstance(action, OpenMaildrop):
            return await self._open(action.account)
        if isinstance(action, ReadMessage):
            return await self._read(action.uid)
        if isinstance(action, RemoveMessages):
            return await self._remove(action.uids)
        raise TypeError(f"not an action for the backend: {action!r}")

    def close(self) -> None:
        """Release the maildrop lock (the session ended, with or without QUIT)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    async def _login(self, action: Login) -> LoginAnswer:
        result = await self._shared.guard.login(action.username, action.password,
                                                client_ip=self.client_ip, protocol=PROTOCOL)
        return LoginAnswer(_STATUS[result.outcome], result.account)

    async def _open(self, account: str) -> MaildropAnswer:
        try:
            mail = await self._in(self._shared.executor, self._shared.stores.open, account)
        except KeyError:
            log.event("pop3.no_mail_store", account=account)
            return MaildropAnswer(problem=MaildropProblem.PERMANENT)
        except Exception as exc:
            log.error("pop3.open_failed", exc, account=account)
            return MaildropAnswer(problem=MaildropProblem.TEMPORARY)
        lock = mail.exclusive(LOCK_PURPOSE)
        try:
            await self._in(self._shared.executor, lock.__enter__)
        except FolderInUseError:
            log.event("pop3.in_use", account=account, client=self.client_ip)
            return MaildropAnswer(problem=MaildropProblem.IN_USE)
        except Exception as exc:
            log.error("pop3.lock_failed", exc, account=account)
            return MaildropAnswer(problem=MaildropProblem.TEMPORARY)
        self._lock, self._mail, self.account = lock, mail, account
        try:
            snapshot = await self._in(self._shared.executor, mail.sync, INBOX)
        except Exception as exc:
            log.error("pop3.sync_failed", exc, account=account)
            self.close()
            return MaildropAnswer(problem=MaildropProblem.TEMPORARY)
        log.event("pop3.opened", account=account, client=self.client_ip,
                  messages=len(snapshot.messages))
        return MaildropAnswer(snapshot=snapshot)

    async def _read(self, uid: int) -> MessageAnswer:
        assert self._mail is not None
        try:
            return MessageAnswer(await self._in(self._shared.executor, self._mail.read,
                                                INBOX, uid))
        except KeyError:
            return MessageAnswer(gone=True)
        except Exception as exc:
            log.error("pop3.read_failed", exc, account=self.account, uid=uid)
            return MessageAnswer()

    async def _remove(self, uids: tuple[int, ...]) -> RemoveAnswer:
        assert self._mail is not None
        try:
            removed = await self._in(self._shared.executor, self._mail.remove, INBOX, uids)
        except Exception as exc:
            log.error("pop3.update_failed", exc, account=self.account, uids=len(uids))
            return RemoveAnswer(ok=False)
        log.event("pop3.removed", account=self.account, client=self.client_ip,
                  removed=len(removed))
        return RemoveAnswer(ok=True)

    @staticmethod
    async def _in(executor: Executor, function: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
