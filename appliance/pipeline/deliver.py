"""Accepting a message: local copies into Maildirs, remote recipients into the queue, durably.

`Deliverer.accept` is what a listener calls after DATA, and what the queue runner calls for
bounces. It returns only when every copy is fsync'ed, so its caller may answer `250`. The
queue entry is written first: if the Maildir step then fails, the entry is removed again and
the caller tempfails the whole message (the client retries; nothing is half-accepted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from appliance.core import log
from appliance.core.errors import MailError
from appliance.core.ids import new_queue_id
from appliance.pipeline.route import Accepted, Route, route
from appliance.storage.interfaces import MailStore, NewMessage, Queue

NULL_SENDERS = ("", "<>")

SpaceCheck = Callable[[int], None]               # raises MailError (452) when the disk is full
SuccessNotice = Callable[[str, str, str | None, bytes, Sequence[Accepted]], None]


class Deliverer:
    """Stores accepted messages: Maildirs for local recipients, the queue for remote ones.

    Args:
        store: the local mail store.
        queue: the outbound queue.
        executor: threads for the fsyncs (never the event loop).
        on_queued: called (in the event loop) after a message entered the queue, to wake the
            queue runner.
        check_space: the free-space floor; raises a MailError carrying `452 4.3.1`.
        on_local_success: called with (queue_id, sender, envid, message, recipients) for local
            recipients that asked for NOTIFY=SUCCESS, to send them a `delivered` DSN.
    """

    def __init__(self, store: MailStore, queue: Queue, executor: Executor, *,
                 on_queued: Callable[[], None] | None = None,
                 check_space: SpaceCheck | None = None,
                 on_local_success: SuccessNotice | None = None) -> None:
        self._store = store
        self._queue = queue
        self._executor = executor
        self._on_queued = on_queued
        self._check_space = check_space
        self.on_local_success = on_local_success

    async def accept(self, message: bytes, sender: str, recipients: Sequence[Accepted], *,
                     envid: str | None = None, ret: str | None = None,
                     smtputf8: bool = False, body_8bit: bool = False,
                     queue_id: str | None = None, enforce_floor: bool = True) -> str:
        """Store `message` for every recipient durably; return its queue id.

        Args:
            message: the message with CRLF line ends (trace headers included), not
                dot-stuffed. Maildir copies get LF line ends.
            sender: the envelope sender; "" (or "<>") is the null reverse-path.
            recipients: the accepted recipients with their directory resolutions.
            queue_id: the id already named in the trace headers (a new one if None).
            enforce_floor: False for bounces, which must not be lost to the free-space floor.

        Raises:
            MailError: storing failed (nothing was kept) or the disk is below the floor.
        """
        queue_id = queue_id or new_queue_id()
        sender = "" if sender in NULL_SENDERS else sender
        plan = route(recipients)
        if enforce_floor and self._check_space is not None:
            self._check_space(len(message))
        envelope = NewMessage(queue_id, sender, plan.remote, envid, ret, smtputf8, body_8bit)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._store_all, envelope, message, plan)
        if plan.remote and self._on_queued is not None:
            self._on_queued()
        if plan.delivered_locally and self.on_local_success is not None:
            self.on_local_success(queue_id, sender, envid, message, plan.delivered_locally)
        return queue_id

    def _store_all(self, envelope: NewMessage, message: bytes, plan: Route) -> None:
        if plan.remote:
            self._queue.enqueue(envelope, message)
        if not plan.mailboxes:
            return
        try:
            self._store.deliver(message.replace(b"\r\n", b"\n"), plan.mailboxes)
        except MailError:
            if plan.remote and not self._queue.remove(envelope.queue_id):
                log.event("deliver.unqueue_missed", queue_id=envelope.queue_id)
            raise
