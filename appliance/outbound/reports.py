"""Sending delivery reports: build the DSN (`bounces`) and hand it to the Deliverer.

A report goes to the original envelope sender from the null sender: into a local mailbox if
the sender is one of ours, else into the queue. Nothing is sent to the null sender, about a
report, or to a local sender that no longer exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.core import log
from appliance.core.addresses import AddressError, parse_address
from appliance.outbound.bounces import (
    ReportContext,
    ReportedRecipient,
    build_report,
    should_report,
)
from appliance.outbound.scheduler import Notice
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.storage.interfaces import Directory, RecipientStatus, Resolution


@dataclass(frozen=True)
class ReportSubject:
    """The message a report is about."""

    queue_id: str
    sender: str
    envid: str | None
    ret: str | None
    arrival: float


class Reporter:
    """Builds and queues delivery reports."""

    def __init__(self, deliverer: Deliverer, directory: Directory, hostname: str,
                 full_limit: int) -> None:
        self._deliverer = deliverer
        self._directory = directory
        self._hostname = hostname
        self._full_limit = full_limit
        self._tasks: set[asyncio.Task[None]] = set()

    async def report(self, subject: ReportSubject, action: Notice,
                     recipients: Sequence[ReportedRecipient], original: bytes) -> str | None:
        """Queue one report; return its queue id, or None when none is due.

        Raises:
            MailError: it could not be stored (the caller keeps the notice owed).
        """
        ctx = ReportContext(self._hostname, subject.queue_id, subject.sender, subject.envid,
                            subject.ret, subject.arrival, time.time(), self._full_limit)
        if not should_report(ctx, original):
            log.event("dsn.suppressed", queue_id=subject.queue_id, action=action.value,
                      reason="null sender" if not subject.sender else "report about a report")
            return None
        target = self._resolve(subject.sender)
        if target is None:
            log.event("dsn.undeliverable", queue_id=subject.queue_id, sender=subject.sender)
            return None
        dsn = build_report(ctx, action, recipients, original)
        if _final_delivery(target):
            dsn = b"Return-Path: <>\r\n" + dsn     # RFC 5321 4.4, as the MX writes it
        queue_id = await self._deliverer.accept(
            dsn, "", [target], smtputf8=not subject.sender.isascii(),
            body_8bit=not dsn.isascii(), enforce_floor=False)
        log.event("dsn.queued", queue_id=queue_id, about=subject.queue_id,
                  action=action.value, recipients=len(recipients))
        return queue_id

    def _resolve(self, sender: str) -> Accepted | None:
        try:
            address = parse_address(sender)
        except AddressError:
            return None
        resolution = self._directory.resolve(address)
        if resolution.status in (RecipientStatus.UNKNOWN, RecipientStatus.DISABLED):
            return None
        if resolution.status is RecipientStatus.NOT_LOCAL:
            resolution = Resolution(RecipientStatus.NOT_LOCAL)
        # Reports ask for no reports about themselves (RFC 3461 6.2).
        return Accepted(str(address), resolution, ("NEVER",))

    def local_success(self, queue_id: str, sender: str, envid: str | None, message: bytes,
                      recipients: Sequence[Accepted]) -> None:
        """Deliverer hook: send `delivered` reports for NOTIFY=SUCCESS local recipients."""
        subject = ReportSubject(queue_id, sender, envid, None, time.time())
        reported = [ReportedRecipient(r.address, r.orcpt, "250 2.0.0 delivered to mailbox",
                                      last_attempt=time.time()) for r in recipients]
        task = asyncio.get_running_loop().create_task(
            self._report_quietly(subject, reported, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report_quietly(self, subject: ReportSubject,
                              recipients: Sequence[ReportedRecipient], message: bytes) -> None:
        try:
            await self.report(subject, Notice.DELIVERED, recipients, message)
        except Exception as exc:
            log.error("dsn.failed", exc, queue_id=subject.queue_id)


def _final_delivery(target: Accepted) -> bool:
    """True when the report goes only into our own mailboxes (no copy is queued onward),
    where `Return-Path` belongs (RFC 5321 4.4: added at final delivery)."""
    resolution = target.resolution
    return resolution.status is not RecipientStatus.NOT_LOCAL and not resolution.remote
