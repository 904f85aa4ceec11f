"""The engine's report intake: after the MX stored a message for a report address, parse
the reports it carries and store them, in a worker thread, after the `250`.

Delivery never waits for or fails because of this step (a report is untrusted input from
anyone): the Deliverer calls `ReportIntake.offer` once the message is durable, `offer` only
queues the work, and every problem becomes a `reports.rejected` log line. The message stays
in the mailbox as delivered, so an admin can still `mailstead reports import` it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any

from appliance.core import log
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.reports.addresses import ReportAddresses
from appliance.reports.extract import reports_in_message
from appliance.reports.model import Limits, Report
from appliance.reports.store import ReportStore
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

DAY = 86_400
MAX_PENDING = 32                     # messages waiting to be parsed; more are only logged
MAX_PENDING_BYTES = 64 * 1024 * 1024 # and their size in all (they stay in the mailbox)


def is_local(domain: str, local_domains: Iterable[str]) -> bool:
    """`domain` is one of ours or below one (a DMARC policy may be a subdomain's)."""
    return any(domain == d or domain.endswith("." + d) for d in local_domains)


class ReportIntake:
    """Parses and stores the reports delivered to the report addresses, one at a time."""

    def __init__(self, store: ReportStore, directory: SqliteDirectory, executor: Executor,
                 addresses: ReportAddresses, *, retention_days: int, limits: Limits,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._directory = directory
        self._executor = executor
        self._addresses = addresses
        self._retention = retention_days * DAY
        self._limits = limits
        self._clock = clock
        self._waiting: deque[tuple[str, bytes]] = deque()   # appended in the loop only
        self._waiting_bytes = 0                    # of those and the one being parsed
        self._bytes_lock = threading.Lock()
        self._draining = False
        self._lock = threading.Lock()      # one report at a time: CPU for mail first

    def offer(self, queue_id: str, message: bytes, recipients: Sequence[Accepted],
              folder: str) -> None:
        """The Deliverer's `on_local_delivery`: queue the work when a report address got
        `message`. Called in the event loop; never raises, never waits."""
        try:
            if not any(self._addresses.matches(r) for r in recipients):
                return
            reason = self._refusal(message, folder)
            if reason is not None:
                log.event("reports.rejected", queue_id=queue_id, reason=reason)
                return
            with self._bytes_lock:
                self._waiting_bytes += len(message)
            self._waiting.append((queue_id, message))
            if not self._draining:
                self._start_drain()
        except Exception as exc:    # the mail is delivered: this must not turn into a 451
            log.error("reports.intake_failed", exc, queue_id=queue_id)

    def _refusal(self, message: bytes, folder: str) -> str | None:
        if folder == "Junk":     # the spam check judged it: not trusted to parse
            return "delivered to Junk"
        if (len(self._waiting) >= MAX_PENDING
                or self._waiting_bytes + len(message) > MAX_PENDING_BYTES):
            return "intake busy"
        return None

    def _start_drain(self) -> None:
        """One job in the shared pool works through the waiting messages, so reports
        never hold more than one of the delivery threads."""
        self._draining = True
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._drain)
        future.add_done_callback(self._drained)

    def _drain(self) -> None:
        """In a worker thread: process the waiting messages until none is left."""
        while True:
            try:
                queue_id, message = self._waiting.popleft()
            except IndexError:
                return
            try:
                self.process(queue_id, message, f"mail {queue_id}")
            except Exception as exc:    # sqlite errors, a bug: logged, the next one runs
                log.error("reports.intake_failed", exc, queue_id=queue_id)
            finally:
                with self._bytes_lock:
                    self._waiting_bytes -= len(message)

    def _drained(self, done: asyncio.Future[None]) -> None:
        """In the event loop: restart when a message arrived while the job was ending."""
        self._draining = False
        if not done.cancelled() and done.exception() is not None:
            log.error("reports.intake_failed", done.exception())
        if self._waiting:
            self._start_drain()

    def process(self, queue_id: str, message: bytes, source: str) -> list[int]:
        """Blocking: parse `message`, store its reports about local domains, prune old
        ones; return the ids of the reports newly stored."""
        with self._lock:
            found = reports_in_message(message, self._limits)
            for error in found.errors:
                log.event("reports.rejected", queue_id=queue_id, reason=error)
            if not found.reports and not found.errors:
                # ordinary mail to postmaster@ (bounces, abuse complaints): nothing wrong
                log.event("reports.none_attached", logging.DEBUG, queue_id=queue_id)
            local = self._directory.list_domains()
            stored = [row for report in found.reports
                      if (row := self._save(queue_id, report, source, local)) is not None]
            pruned = self._store.prune(int(self._clock()) - self._retention)
            if pruned:
                log.event("reports.pruned", count=pruned)
            return stored

    def _save(self, queue_id: str, report: Report, source: str,
              local: Sequence[str]) -> int | None:
        fields: dict[str, Any] = {"queue_id": queue_id, "kind": report.kind,
                                  "org": report.org_name, "report_id": report.report_id,
                                  "domain": report.domain}
        if not is_local(report.domain, local):
            log.event("reports.rejected", reason="not about a local domain", **fields)
            return None
        row, new = self._store.save(report, source, int(self._clock()))
        log.event("reports.stored" if new else "reports.duplicate", id=row,
                  messages=report.messages, failed=report.failed, **fields)
        return row if new else None


def limits_from(settings: Settings) -> Limits:
    return Limits(max_uncompressed=settings.get_int("reports.max_size"))


def build_intake(settings: Settings, executor: Executor) -> ReportIntake | None:
    """The intake for one engine process (its own database connection), or None when
    `reports.addresses` is empty."""
    addresses = ReportAddresses.from_setting(settings.get_str("reports.addresses"))
    if not addresses:
        return None
    conn = open_database(settings.data_dir)
    return ReportIntake(ReportStore(conn), SqliteDirectory(conn), executor, addresses,
                        retention_days=settings.get_int("reports.retention_days"),
                        limits=limits_from(settings))


def attach_intake(settings: Settings, deliverer: Deliverer, executor: Executor) -> Deliverer:
    """`deliverer` with the report intake as its `on_local_delivery` (for the MX)."""
    intake = build_intake(settings, executor)
    if intake is not None:
        deliverer.on_local_delivery = intake.offer
    return deliverer
