"""The queue runner: takes due messages, delivers them per destination domain, records results.

One runner per engine (one process). It wakes when something is queued (`wake`), when an
attempt finishes, when the next retry is due, and every `poll_interval` seconds in any case.
Each due message becomes one task that tries every destination domain of its pending
recipients at once (within the total limit and each domain's concurrency window,
`concurrency`), then decides per recipient (`scheduler.decide`), queues the reports owed
(`reports`), records the new states, and removes the message when no recipient is left.
Reports are queued before the state that owes them is recorded: after a crash a report may
come twice, never not at all. Disk and SQLite work runs in threads, never in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from appliance.core import log
from appliance.core.addresses import domain_of
from appliance.outbound.bounces import ReportedRecipient
from appliance.outbound.concurrency import DestinationWindows
from appliance.outbound.reports import Reporter, ReportSubject
from appliance.outbound.scheduler import Decision, Notice, RetryPolicy, decide
from appliance.outbound.signing import UNSIGNED, MessageSigner
from appliance.outbound.types import OutboundEnvelope, Outcome, RecipientResult
from appliance.storage.interfaces import (
    Queue,
    QueuedMessage,
    QueuedRecipient,
    RecipientState,
    RecipientUpdate,
    Settled,
)

Transport = Callable[[OutboundEnvelope, bytes], Awaitable[list[RecipientResult]]]
T = TypeVar("T")

INTERNAL_DEFERRAL = "451 4.3.0 Internal error during delivery, will retry"
NO_RESULT = "451 4.3.0 No result from the delivery attempt, will retry"
LOST_MESSAGE = "5.3.0 The queued copy of the message was lost"


@dataclass(frozen=True)
class RunnerLimits:
    """Concurrency and pacing (`queue.max_deliveries`, `queue.initial_per_domain`,
    `queue.max_per_domain`; the window between the last two: `concurrency`)."""

    max_deliveries: int = 100
    max_per_domain: int = 20
    initial_per_domain: int = 5
    poll_interval: float = 10.0     # also picks up what other processes queued
    batch: int = 200                # due messages looked at per round


class QueueRunner:
    """Delivers the queue until stopped."""

    def __init__(self, queue: Queue, transport: Transport, executor: Executor,
                 policy: RetryPolicy, reporter: Reporter, limits: RunnerLimits,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 signer: MessageSigner = UNSIGNED) -> None:
        self._queue = queue
        self._signer = signer
        self._transport = transport
        self._executor = executor
        self._policy = policy
        self._reporter = reporter
        self._limits = limits
        self._clock = clock
        self._rand = rand
        self._wakeup = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._domain_load: dict[str, int] = {}
        self._windows = DestinationWindows(limits.initial_per_domain, limits.max_per_domain)
        self._stopping = False

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the queue now (something was queued, retried or finished)."""
        self._wakeup.set()

    @property
    def in_flight(self) -> frozenset[str]:
        return frozenset(self._tasks)

    async def run(self) -> None:
        """Dispatch due messages until `stop` is called."""
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self._dispatch()
                delay = await self._sleep_time()
            except Exception as exc:      # a broken queue database must not end the loop
                log.error("queue.runner_error", exc)
                delay = self._limits.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def stop(self, grace: float) -> None:
        """Stop dispatching, give attempts `grace` seconds, then cancel the rest (they stay
        queued and are tried again after the restart)."""
        self._stopping = True
        self._wakeup.set()
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- dispatch ----------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        room = self._limits.max_deliveries - sum(self._domain_load.values())
        if room <= 0:
            return
        busy = frozenset(d for d, load in self._domain_load.items()
                         if load >= self._windows.limit(d))
        self._windows.forget_idle(frozenset(self._domain_load))
        # Look at a few more than there is room for, not at the whole batch: under load
        # every queued message wakes the runner.
        limit = min(self._limits.batch, max(4 * room, 8))
        now = self._clock()
        due = await self._io(self._queue.due, now, limit, self.in_flight, busy)
        for message in due:
            chosen = self._choose(message, now, room)
            if chosen:
                room -= len(_domains(chosen))
                self._start(message, chosen)
            if room <= 0:
                return

    def _choose(self, message: QueuedMessage, now: float, room: int) -> list[QueuedRecipient]:
        """The due recipients of `message` in domains with a free slot, up to `room` domains.

        The rest stay due and are taken in a later round, once this attempt has finished.
        """
        due = [r for r in message.pending if r.next_try <= now]
        free = [d for d in _domains(due)
                if self._domain_load.get(d, 0) < self._windows.limit(d)][:room]
        return [r for r in due if domain_of(r.address) in free]

    def _start(self, message: QueuedMessage, recipients: list[QueuedRecipient]) -> None:
        domains = _domains(recipients)
        for domain in domains:
            self._domain_load[domain] = self._domain_load.get(domain, 0) + 1
        task = asyncio.get_running_loop().create_task(self._process(message, recipients))
        self._tasks[message.queue_id] = task
        task.add_done_callback(lambda _t: self._finished(message.queue_id, domains))

    def _finished(self, queue_id: str, domains: Sequence[str]) -> None:
        self._tasks.pop(queue_id, None)
        for domain in domains:
            left = self._domain_load.get(domain, 0) - 1
            if left > 0:
                self._domain_load[domain] = left
            else:
                self._domain_load.pop(domain, None)
        self.wake()

    async def _sleep_time(self) -> float:
        next_due = await self._io(self._queue.next_due)
        if next_due is None:
            return self._limits.poll_interval
        return min(max(next_due - self._clock(), 0.05), self._limits.poll_interval)

    # -- one message -------------------------------------------------------------------------

    async def _process(self, message: QueuedMessage,
                       recipients: list[QueuedRecipient]) -> None:
        try:
            await self._attempt(message, recipients)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("queue.attempt_failed", exc, queue_id=message.queue_id)
            await self._defer_all(message, recipients, INTERNAL_DEFERRAL)

    async def _attempt(self, message: QueuedMessage,
                       recipients: list[QueuedRecipient]) -> None:
        try:
            content = await self._io(self._queue.read, message.queue_id)
        except FileNotFoundError:
            log.error("queue.message_lost", queue_id=message.queue_id)
            results = [RecipientResult(r.address, Outcome.FAILED, LOST_MESSAGE)
                       for r in message.pending]
            await self._record(message, results, b"")
            return
        # The signed copy goes out; reports quote the message as it was queued.
        outgoing = await self._io(self._signer.sign, message.sender, content)
        groups = _by_domain(recipients)
        attempts = [self._deliver(message, group, outgoing) for group in groups.values()]
        outcomes = await asyncio.gather(*attempts)
        await self._record(message, [r for group in outcomes for r in group], content)

    async def _deliver(self, message: QueuedMessage, recipients: Sequence[QueuedRecipient],
                       content: bytes) -> list[RecipientResult]:
        envelope = OutboundEnvelope(
            message.queue_id, message.sender, tuple(r.outbound() for r in recipients),
            len(content), message.smtputf8, message.body_8bit, message.envid, message.ret)
        try:
            results = await self._transport(envelope, content)
        except Exception as exc:    # unknown errors are temporary (STYLE.md 7)
            log.error("queue.transport_error", exc, queue_id=message.queue_id)
            results = []
        self._windows.record(domain_of(recipients[0].address), _answered(results))
        by_address = {r.address: r for r in results}
        return [by_address.get(r.address) or RecipientResult(
            r.address, Outcome.DEFERRED, INTERNAL_DEFERRAL if not results else NO_RESULT)
            for r in recipients]

    async def _record(self, message: QueuedMessage, results: Sequence[RecipientResult],
                      content: bytes) -> None:
        now = self._clock()
        pending = {r.address: r for r in message.pending}
        decisions = [decide(self._policy, pending[r.address], r, message.queued_at, now,
                            self._rand()) for r in results if r.address in pending]
        for result in results:
            log.event("delivery.result", queue_id=message.queue_id, recipient=result.address,
                      outcome=result.outcome.value, reply=result.reply,
                      remote_host=result.remote_host)
        decisions = await self._send_reports(message, decisions, results, content, now)
        # One durable commit records the results and, when nothing is left to send, removes
        # the message (its file goes after the commit). Deleted meanwhile: nothing to do.
        settled = await self._io(self._queue.settle, message.queue_id,
                                 [d.update for d in decisions])
        if settled is Settled.REMOVED:
            log.event("queue.finished", queue_id=message.queue_id)

    async def _send_reports(self, message: QueuedMessage, decisions: list[Decision],
                            results: Sequence[RecipientResult], content: bytes,
                            now: float) -> list[Decision]:
        """Queue one report per Action; a notice whose report failed stays owed."""
        by_address = {r.address: r for r in results}
        subject = ReportSubject(message.queue_id, message.sender, message.envid, message.ret,
                                message.queued_at)
        kept = list(decisions)
        for notice in (Notice.FAILED, Notice.DELAYED, Notice.RELAYED):
            chosen = [d for d in decisions if d.notice is notice]
            if not chosen:
                continue
            reported = [_reported(d, by_address[d.update.address], now, message, self._policy)
                        for d in chosen]
            try:
                await self._reporter.report(subject, notice, reported, content)
            except Exception as exc:
                log.error("dsn.failed", exc, queue_id=message.queue_id, action=notice.value)
                kept = [self._owed(d, now) if d in chosen else d for d in kept]
        return kept

    def _owed(self, decision: Decision, now: float) -> Decision:
        """Undo what a failed report would have settled: try (and report) again later."""
        update = decision.update
        if decision.notice is Notice.FAILED:
            update = RecipientUpdate(update.address, RecipientState.QUEUED,
                                     now + self._policy.first_retry, update.last_reply,
                                     update.remote_host, update.delay_warned)
        elif decision.notice is Notice.DELAYED:
            update = RecipientUpdate(update.address, update.state, update.next_try,
                                     update.last_reply, update.remote_host, False)
        return Decision(update, decision.notice)

    async def _defer_all(self, message: QueuedMessage, recipients: list[QueuedRecipient],
                         reply: str) -> None:
        retry = self._clock() + self._policy.first_retry
        updates = [RecipientUpdate(r.address, RecipientState.QUEUED, retry, reply,
                                   delay_warned=r.delay_warned) for r in recipients]
        try:
            await self._io(self._queue.update, message.queue_id, updates)
        except Exception as exc:
            log.error("queue.update_failed", exc, queue_id=message.queue_id)

    async def _io(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)


def _answered(results: Sequence[RecipientResult]) -> bool:
    """Whether a peer took part: some recipient was settled, or a transaction was held
    (the transport notes the peer's address then), e.g. a greylisting 450 to RCPT. No
    connection, a refused greeting or a timeout before MAIL is no answer."""
    return any(r.outcome is not Outcome.DEFERRED or "remote_ip" in r.details
               for r in results)


def _domains(recipients: Sequence[QueuedRecipient]) -> list[str]:
    return list(dict.fromkeys(domain_of(r.address) for r in recipients))


def _by_domain(recipients: Sequence[QueuedRecipient]) -> dict[str, list[QueuedRecipient]]:
    groups: dict[str, list[QueuedRecipient]] = {}
    for recipient in recipients:
        groups.setdefault(domain_of(recipient.address), []).append(recipient)
    return groups


def _reported(decision: Decision, result: RecipientResult, now: float,
              message: QueuedMessage, policy: RetryPolicy) -> ReportedRecipient:
    recipient = next(r for r in message.recipients if r.address == decision.update.address)
    until = message.queued_at + policy.max_age if decision.notice is Notice.DELAYED else None
    return ReportedRecipient(recipient.address, recipient.orcpt, decision.update.last_reply,
                             result.remote_host, now, until)
