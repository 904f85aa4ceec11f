"""Accepting a message: local copies into Maildirs, remote recipients into the queue, durably.

`Deliverer.accept` is what a listener calls after DATA, and what the queue runner calls for
bounces. It returns only when every copy is fsync'ed, so its caller may answer `250`. The
queue entry is written first: if the Maildir step then fails, the entry is removed again and
the caller tempfails the whole message (the client retries; nothing is half-accepted).

Quota (`Mailbox.quota_bytes`, and `limits.max_messages_per_account` for the number of
messages): a recipient whose mailbox is full is refused on its own at
RCPT with `452 4.2.2` (`quota_refusal`, asked by the MX handler), so the sender retries just
that recipient and the others get the message now. SMTP has one reply for the whole message
after DATA (RFC 5321 3.3; only LMTP answers per recipient, RFC 2033 4.2), and we have no
local deferral queue, so a mailbox found full only at DATA (filled since RCPT, or a
submission recipient) tempfails the whole message before anything is stored or queued: the
same all-or-nothing transaction as a failed write. An alias counts as full when any of its
mailboxes is: a partial fan-out would lose that member's copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from appliance.core import log
from appliance.core.errors import DeliveryError, MailError
from appliance.core.ids import new_queue_id
from appliance.pipeline.route import Accepted, Route, route
from appliance.smtp import replies
from appliance.storage.interfaces import Mailbox, MailStore, NewMessage, Queue, Resolution

NULL_SENDERS = ("", "<>")

SpaceCheck = Callable[[int], None]               # raises MailError (452) when the disk is full
SuccessNotice = Callable[[str, str, str | None, bytes, Sequence[Accepted]], None]
LocalDelivery = Callable[[str, bytes, Sequence[Accepted], str], None]


def quota_reply(used: int, quota: int, size: int) -> str | None:
    """The refusal of `size` more octets for a mailbox holding `used` of its `quota` octets
    (0: no quota), or None when they fit."""
    if not quota or used + size <= quota:
        return None
    return replies.LARGER_THAN_QUOTA if size > quota else replies.MAILBOX_FULL


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
        on_local_delivery: called (in the event loop, after the copies are durable) with
            (queue_id, message, recipients, folder) when a local mailbox got the message;
            it must not block or raise (the report intake, reports/intake.py, sets it).
    """

    def __init__(self, store: MailStore, queue: Queue, executor: Executor, *,
                 on_queued: Callable[[], None] | None = None,
                 check_space: SpaceCheck | None = None,
                 on_local_success: SuccessNotice | None = None,
                 messages_limit: int = 0) -> None:
        self._store = store
        self._messages_limit = messages_limit     # limits.max_messages_per_account; 0: none
        self._queue = queue
        self._executor = executor
        self._on_queued = on_queued
        self._check_space = check_space
        self.on_local_success = on_local_success
        self.on_local_delivery: LocalDelivery | None = None

    async def accept(self, message: bytes, sender: str, recipients: Sequence[Accepted], *,
                     envid: str | None = None, ret: str | None = None,
                     smtputf8: bool = False, body_8bit: bool = False,
                     queue_id: str | None = None, enforce_floor: bool = True,
                     folder: str = "") -> str:
        """Store `message` for every recipient durably; return its queue id.

        Args:
            message: the message with CRLF line ends (trace headers included), not
                dot-stuffed. Maildir copies get LF line ends.
            sender: the envelope sender; "" (or "<>") is the null reverse-path.
            recipients: the accepted recipients with their directory resolutions.
            queue_id: the id already named in the trace headers (a new one if None).
            enforce_floor: False for bounces, which must not be lost to the free-space floor.
            folder: the local mailboxes' folder: "" for the INBOX, "Junk" for mail the
                checks judged spam (remote recipients get it as it is).

        Raises:
            MailError: storing failed (nothing was kept), the disk is below the floor, or a
                local mailbox has no room for the message (`452 4.2.2`, see the module
                docstring).
        """
        queue_id = queue_id or new_queue_id()
        sender = "" if sender in NULL_SENDERS else sender
        plan = route(recipients)
        if enforce_floor and self._check_space is not None:
            self._check_space(len(message))
        envelope = NewMessage(queue_id, sender, plan.remote, envid, ret, smtputf8, body_8bit)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._store_all, envelope, message, plan,
                                   folder)
        if plan.remote and self._on_queued is not None:
            self._on_queued()
        if plan.delivered_locally and self.on_local_success is not None:
            self.on_local_success(queue_id, sender, envid, message, plan.delivered_locally)
        if plan.mailboxes and self.on_local_delivery is not None:
            self.on_local_delivery(queue_id, message, recipients, folder)
        return queue_id

    async def quota_deferral(self, resolution: Resolution, size: int = 0) -> str | None:
        """`quota_refusal` from the event loop: asks the store (in a thread) only when one of
        the recipient's mailboxes has a quota. For RCPT on the MX and on submission."""
        if not self._messages_limit and not any(
                mailbox.quota_bytes for mailbox in resolution.mailboxes):
            return None
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.quota_refusal, resolution, size)

    def quota_refusal(self, resolution: Resolution, size: int = 0) -> str | None:
        """The reply refusing a recipient at RCPT because one of its mailboxes has no room
        for `size` octets (the SIZE the client announced, or 0: none at all), or None.
        Blocking (it reads each mailbox's usage): call it from a thread."""
        for mailbox in resolution.mailboxes:
            reply = self._quota_reply(mailbox, max(size, 1))
            if reply is not None:
                return reply
        return None

    def _quota_reply(self, mailbox: Mailbox, size: int) -> str | None:
        if not mailbox.quota_bytes and not self._messages_limit:
            return None
        used, count = self._store.totals_for_delivery(mailbox)
        reply = quota_reply(used, mailbox.quota_bytes, size)
        if reply is None and self._messages_limit and count >= self._messages_limit:
            reply = replies.MAILBOX_FULL      # the message-count quota (RFC 9208 MESSAGE)
        if reply is not None:
            log.event("deliver.over_quota", mailbox=mailbox.address, used=used,
                      quota=mailbox.quota_bytes, messages=count,
                      messages_limit=self._messages_limit, size=size)
        return reply

    def _check_quotas(self, mailboxes: Sequence[Mailbox], size: int) -> None:
        for mailbox in mailboxes:
            reply = self._quota_reply(mailbox, size)
            if reply is not None:
                raise DeliveryError(reply, f"{mailbox.address} is over its quota")

    def _store_all(self, envelope: NewMessage, message: bytes, plan: Route,
                   folder: str = "") -> None:
        self._check_quotas(plan.mailboxes, len(message))     # before anything is written
        if plan.remote:
            self._queue.enqueue(envelope, message)
        if not plan.mailboxes:
            return
        try:
            self._store.deliver(message.replace(b"\r\n", b"\n"), plan.mailboxes, folder)
        except MailError:
            if plan.remote and not self._queue.remove(envelope.queue_id):
                log.event("deliver.unqueue_missed", queue_id=envelope.queue_id)
            raise
