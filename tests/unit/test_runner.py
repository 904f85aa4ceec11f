"""The queue runner with a fake transport (a test double for the transport only)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appliance.core.addresses import parse_address
from appliance.outbound.reports import Reporter
from appliance.outbound.runner import INTERNAL_DEFERRAL, LOST_MESSAGE, QueueRunner, RunnerLimits
from appliance.outbound.scheduler import RetryPolicy
from appliance.outbound.signing import UNSIGNED, MessageSigner
from appliance.outbound.spool import Spool
from appliance.outbound.types import OutboundEnvelope, Outcome, RecipientResult
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import RecipientState
from appliance.storage.maildir.store import MaildirStore

MESSAGE = b"From: alice@example.test\r\nSubject: out\r\n\r\nhello\r\n"
Rule = Callable[[str], tuple[Outcome, str]]


@dataclass
class FakeTransport:
    """Answers per recipient from `rule`; records calls and the peak concurrency per domain."""

    rule: Rule = lambda _addr: (Outcome.DELIVERED, "250 2.0.0 Ok")
    delay: float = 0.0
    calls: list[OutboundEnvelope] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    peak_total: int = 0
    fail_with: Exception | None = None

    async def __call__(self, envelope: OutboundEnvelope, message: bytes
                       ) -> list[RecipientResult]:
        domain = envelope.recipients[0].address.rpartition("@")[2]
        self.calls.append(envelope)
        self.contents.append(message)
        self.active[domain] = self.active.get(domain, 0) + 1
        self.peak[domain] = max(self.peak.get(domain, 0), self.active[domain])
        self.peak_total = max(self.peak_total, sum(self.active.values()))
        try:
            await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                raise self.fail_with
            return [RecipientResult(r.address, *self.rule(r.address), "mx." + domain)
                    for r in envelope.recipients]
        finally:
            self.active[domain] -= 1


@dataclass
class World:
    tmp: Path
    spool: Spool
    deliverer: Deliverer
    directory: SqliteDirectory
    transport: FakeTransport
    runner: QueueRunner

    def alice_mail(self) -> list[bytes]:
        new = self.tmp / "mail" / "example.test" / "alice" / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    async def send(self, *recipients: str, sender: str = "alice@example.test",
                   notify: tuple[str, ...] = ()) -> str:
        accepted = [Accepted(r, self.directory.resolve(parse_address(r)), notify)
                    for r in recipients]
        return await self.deliverer.accept(MESSAGE, sender, accepted)


@asynccontextmanager
async def world(tmp_path: Path, transport: FakeTransport | None = None,
                limits: RunnerLimits | None = None,
                policy: RetryPolicy | None = None,
                signer: MessageSigner = UNSIGNED) -> AsyncIterator[World]:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    directory.add_account("alice@example.test", "x")
    spool = Spool(tmp_path / "queue")
    executor = ThreadPoolExecutor(8)
    fake = transport or FakeTransport()
    holder: list[QueueRunner] = []
    deliverer = Deliverer(MaildirStore(tmp_path), spool, executor,
                          on_queued=lambda: holder[0].wake())
    reporter = Reporter(deliverer, directory, "mx.example.test", 100_000)
    runner = QueueRunner(spool, fake, executor, policy or RetryPolicy(), reporter,
                         limits or RunnerLimits(poll_interval=30.0), signer=signer)
    holder.append(runner)
    task = asyncio.get_running_loop().create_task(runner.run())
    try:
        yield World(tmp_path, spool, deliverer, directory, fake, runner)
    finally:
        await runner.stop(1.0)
        await task
        executor.shutdown()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_delivered_messages_leave_the_queue_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            started = time.monotonic()
            queue_id = await w.send("x@remote.test", "y@remote.test", "z@other.test")
            await until(lambda: not w.spool.messages())
            assert time.monotonic() - started < 2.0        # woken, not polled (30 s)
            assert len(w.transport.calls) == 2              # one attempt per domain
            by_domain = {c.recipients[0].address.rpartition("@")[2]: c
                         for c in w.transport.calls}
            assert [r.address for r in by_domain["remote.test"].recipients] == [
                "x@remote.test", "y@remote.test"]
            call = by_domain["other.test"]
            assert (call.queue_id, call.sender, call.size) == (
                queue_id, "alice@example.test", len(MESSAGE))
            assert list(w.spool.messages_dir.iterdir()) == []
            assert w.alice_mail() == []
    asyncio.run(scenario())


def test_permanent_failure_bounces_to_the_local_sender(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.FAILED, "550 5.1.1 no such user"))

    async def scenario() -> None:
        async with world(tmp_path, fake) as w:
            await w.send("x@remote.test")
            await until(lambda: bool(w.alice_mail()) and not w.spool.messages())
            report = parse(w.alice_mail()[0].replace(b"\n", b"\r\n"))
            assert report.get_content_type() == "multipart/report"
            block: Any = list(report.iter_parts())[1].get_payload()[1]  # type: ignore[index]
            assert (block["Action"], block["Status"]) == ("failed", "5.1.1")
            assert block["Remote-MTA"] == "dns; mx.remote.test"
    asyncio.run(scenario())


def test_deferred_recipient_waits_with_backoff(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.DEFERRED, "451 4.4.1 try later"))

    async def scenario() -> None:
        async with world(tmp_path, fake) as w:
            queue_id = await w.send("x@remote.test")
            await until(lambda: bool(fake.calls) and w.spool.get(queue_id) is not None
                        and w.spool.get(queue_id).recipients[0].attempts == 1)  # type: ignore[union-attr]
            recipient = w.spool.get(queue_id).recipients[0]  # type: ignore[union-attr]
            assert recipient.state is RecipientState.QUEUED
            assert recipient.last_reply == "451 4.4.1 try later"
            assert 230 < recipient.next_try - time.time() < 370
            await asyncio.sleep(0.2)
            assert len(fake.calls) == 1
            assert w.alice_mail() == []
    asyncio.run(scenario())


def test_mixed_results_keep_only_the_deferred(tmp_path: Path) -> None:
    def rule(address: str) -> tuple[Outcome, str]:
        return ((Outcome.DELIVERED, "250 ok") if address.startswith("ok")
                else (Outcome.DEFERRED, "451 4.3.0 later"))

    async def scenario() -> None:
        async with world(tmp_path, FakeTransport(rule=rule)) as w:
            queue_id = await w.send("ok@remote.test", "later@remote.test")
            await until(lambda: w.spool.get(queue_id) is not None and all(
                r.attempts == 1 for r in w.spool.get(queue_id).recipients))  # type: ignore[union-attr]
            states = {r.address: r.state for r in w.spool.get(queue_id).recipients}  # type: ignore[union-attr]
            assert states == {"ok@remote.test": RecipientState.DELIVERED,
                              "later@remote.test": RecipientState.QUEUED}
    asyncio.run(scenario())


def test_concurrency_limits_total_and_per_domain(tmp_path: Path) -> None:
    fake = FakeTransport(delay=0.1)
    limits = RunnerLimits(max_deliveries=3, max_per_domain=2, poll_interval=30.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, limits) as w:
            for n in range(6):
                await w.send(f"r{n}@one.test")
                await w.send(f"r{n}@two.test")
            await until(lambda: not w.spool.messages(), timeout=10)
            assert len(fake.calls) == 12
            assert fake.peak["one.test"] <= 2
            assert fake.peak["two.test"] <= 2
            assert fake.peak_total <= 3
            assert fake.peak_total >= 2
    asyncio.run(scenario())


def test_the_window_per_domain_opens_with_answers(tmp_path: Path) -> None:
    fake = FakeTransport(delay=0.05)
    limits = RunnerLimits(max_deliveries=50, max_per_domain=4, initial_per_domain=2,
                          poll_interval=30.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, limits) as w:
            for n in range(40):
                await w.send(f"r{n}@one.test")
            await until(lambda: not w.spool.messages(), timeout=20)
            assert fake.peak["one.test"] == 4      # from 2, widened by delivered attempts
    asyncio.run(scenario())


def test_the_window_stays_narrow_when_the_peer_does_not_answer(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.DEFERRED, "451 4.4.1 Cannot connect"),
                         delay=0.05)
    limits = RunnerLimits(max_deliveries=50, max_per_domain=4, initial_per_domain=2,
                          poll_interval=30.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, limits) as w:
            for n in range(20):
                await w.send(f"r{n}@down.test")
            await until(lambda: len(fake.calls) == 20, timeout=20)
            assert fake.peak["down.test"] <= 2
    asyncio.run(scenario())


def test_transport_exception_defers(tmp_path: Path) -> None:
    fake = FakeTransport(fail_with=RuntimeError("bug in the transport"))

    async def scenario() -> None:
        async with world(tmp_path, fake) as w:
            queue_id = await w.send("x@remote.test")
            await until(lambda: w.spool.get(queue_id) is not None
                        and w.spool.get(queue_id).recipients[0].attempts == 1)  # type: ignore[union-attr]
            recipient = w.spool.get(queue_id).recipients[0]  # type: ignore[union-attr]
            assert recipient.state is RecipientState.QUEUED
            assert recipient.last_reply == INTERNAL_DEFERRAL
    asyncio.run(scenario())


class HeaderSigner:
    """A signer that prepends a header naming the sender (what DKIM will do, in shape)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.senders: list[str] = []

    def sign(self, sender: str, content: bytes) -> bytes:
        self.senders.append(sender)
        if self.fail:
            raise ValueError("no key for this domain")
        return f"X-Signed-For: {sender}\r\n".encode() + content


def test_the_signer_sees_each_attempt_and_the_signed_copy_leaves(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.FAILED, "550 5.1.1 no such user"))
    signer = HeaderSigner()

    async def scenario() -> None:
        async with world(tmp_path, fake, signer=signer) as w:
            await w.send("x@remote.test", "y@other.test")
            await until(lambda: bool(w.alice_mail()) and not w.spool.messages())
            signed = b"X-Signed-For: alice@example.test\r\n" + MESSAGE
            assert sorted(fake.contents) == [signed, signed]        # signed once, sent twice
            assert {c.size for c in fake.calls} == {len(signed)}     # SIZE= of what is sent
            # The bounce (to alice, not signed by the runner) quotes the queued copy.
            assert signer.senders == ["alice@example.test"]
            report = w.alice_mail()[0]
            assert b"X-Signed-For" not in report
            assert b"Subject: out" in report
    asyncio.run(scenario())


def test_a_failing_signer_defers_and_sends_nothing(tmp_path: Path) -> None:
    fake = FakeTransport()

    async def scenario() -> None:
        async with world(tmp_path, fake, signer=HeaderSigner(fail=True)) as w:
            queue_id = await w.send("x@remote.test")
            await until(lambda: w.spool.get(queue_id) is not None
                        and w.spool.get(queue_id).recipients[0].last_reply != "")  # type: ignore[union-attr]
            recipient = w.spool.get(queue_id).recipients[0]  # type: ignore[union-attr]
            assert recipient.state is RecipientState.QUEUED
            assert recipient.last_reply == INTERNAL_DEFERRAL
            assert fake.calls == []
    asyncio.run(scenario())


def test_lost_message_file_bounces_without_content(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, FakeTransport(delay=0.3)) as w:
            w.runner._stopping = True          # hold the runner while we damage the spool
            w.runner.wake()
            await asyncio.sleep(0.1)
        spool = Spool(tmp_path / "queue")
        directory = SqliteDirectory(open_database(tmp_path))
        executor = ThreadPoolExecutor(2)
        deliverer = Deliverer(MaildirStore(tmp_path), spool, executor)
        queue_id = await deliverer.accept(MESSAGE, "alice@example.test", [Accepted(
            "x@remote.test", directory.resolve(parse_address("x@remote.test")))])
        os.unlink(spool.messages_dir / queue_id)
        assert spool.recover()["lost"] == 1
        fake = FakeTransport()
        runner = QueueRunner(spool, fake, executor, RetryPolicy(),
                             Reporter(deliverer, directory, "mx.example.test", 1000),
                             RunnerLimits(poll_interval=30.0))
        task = asyncio.get_running_loop().create_task(runner.run())
        box = tmp_path / "mail" / "example.test" / "alice" / "new"
        await until(lambda: box.exists() and any(box.iterdir()))
        await runner.stop(1.0)
        await task
        assert fake.calls == []
        assert spool.get(queue_id) is None
        report = next(box.iterdir()).read_bytes()
        assert LOST_MESSAGE.encode() in report
    asyncio.run(scenario())


def test_remote_sender_bounce_is_queued_from_the_null_sender(tmp_path: Path) -> None:
    def rule(address: str) -> tuple[Outcome, str]:
        return ((Outcome.FAILED, "550 5.1.1 unknown") if address == "x@remote.test"
                else (Outcome.DEFERRED, "451 4.3.0 hold"))

    async def scenario() -> None:
        async with world(tmp_path, FakeTransport(rule=rule)) as w:
            await w.send("x@remote.test", sender="someone@elsewhere.test")
            await until(lambda: any(c.sender == "" for c in w.transport.calls))
            bounce = next(c for c in w.transport.calls if c.sender == "")
            assert [r.address for r in bounce.recipients] == ["someone@elsewhere.test"]
            assert bounce.recipients[0].notify == ("NEVER",)
    asyncio.run(scenario())


def test_no_bounce_for_the_null_sender(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.FAILED, "550 5.1.1 unknown"))

    async def scenario() -> None:
        async with world(tmp_path, fake) as w:
            await w.send("x@remote.test", sender="")
            await until(lambda: not w.spool.messages())
            await asyncio.sleep(0.1)
            assert len(fake.calls) == 1
            assert w.alice_mail() == []
    asyncio.run(scenario())


def test_notify_never_suppresses_the_bounce(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.FAILED, "550 5.1.1 unknown"))

    async def scenario() -> None:
        async with world(tmp_path, fake) as w:
            await w.send("x@remote.test", notify=("NEVER",))
            await until(lambda: not w.spool.messages())
            assert w.alice_mail() == []
    asyncio.run(scenario())


def test_failed_report_keeps_the_failure_owed(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.FAILED, "550 5.1.1 unknown"))

    async def broken(*args: object, **kwargs: object) -> None:
        raise OSError("cannot write the report")

    async def scenario() -> None:
        async with world(tmp_path, fake) as w:
            monkeypatch.setattr(w.runner._reporter, "report", broken)
            queue_id = await w.send("x@remote.test")
            await until(lambda: w.spool.get(queue_id) is not None
                        and w.spool.get(queue_id).recipients[0].attempts == 1)  # type: ignore[union-attr]
            recipient = w.spool.get(queue_id).recipients[0]  # type: ignore[union-attr]
            assert recipient.state is RecipientState.QUEUED
            assert recipient.next_try > time.time() + 60
    asyncio.run(scenario())


def test_expired_message_is_bounced(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.DEFERRED, "451 4.4.1 no answer"))
    policy = RetryPolicy(max_age=0.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, policy=policy) as w:
            await w.send("x@remote.test")
            await until(lambda: bool(w.alice_mail()) and not w.spool.messages())
            assert b"5.4.7" in w.alice_mail()[0]
            assert b"451 4.4.1 no answer" in w.alice_mail()[0]
    asyncio.run(scenario())


def test_delay_warning_is_sent_once(tmp_path: Path) -> None:
    fake = FakeTransport(rule=lambda a: (Outcome.DEFERRED, "451 4.4.1 no answer"))
    policy = RetryPolicy(first_retry=0.05, max_retry=0.05, delay_warning=0.01, jitter=0.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, policy=policy) as w:
            await w.send("x@remote.test")
            await until(lambda: len(fake.calls) >= 4)
            warnings = w.alice_mail()
            assert len(warnings) == 1
            assert b"Action: delayed" in warnings[0]
    asyncio.run(scenario())


def test_a_backlog_for_one_domain_does_not_hold_up_others(tmp_path: Path) -> None:
    fake = FakeTransport(delay=0.3)
    limits = RunnerLimits(max_deliveries=4, max_per_domain=1, poll_interval=30.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, limits) as w:
            for n in range(12):
                await w.send(f"r{n}@slow.test")
            await w.send("quick@fast.test")
            await until(lambda: any(c.recipients[0].address == "quick@fast.test"
                                    for c in fake.calls), timeout=1.0)
            assert fake.peak["slow.test"] == 1
    asyncio.run(scenario())


def test_a_message_to_a_busy_and_a_free_domain_goes_out_where_it_can(tmp_path: Path) -> None:
    fake = FakeTransport(delay=0.3)
    limits = RunnerLimits(max_deliveries=4, max_per_domain=1, poll_interval=30.0)

    async def scenario() -> None:
        async with world(tmp_path, fake, limits) as w:
            await w.send("first@busy.test")
            await until(lambda: bool(fake.calls))
            await w.send("second@busy.test", "other@free.test")
            await until(lambda: not w.spool.messages(), timeout=5)
            order = [c.recipients[0].address for c in fake.calls]
            assert order.index("other@free.test") < order.index("second@busy.test")
            assert fake.peak["busy.test"] == 1
    asyncio.run(scenario())


def test_local_delivery_with_notify_success_sends_a_delivered_report(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            w.directory.add_account("bob@example.test", "x")
            w.deliverer.on_local_success = w.runner._reporter.local_success
            await w.send("bob@example.test", notify=("SUCCESS",))
            await until(lambda: bool(w.alice_mail()))
            report = parse(w.alice_mail()[0].replace(b"\n", b"\r\n"))
            block: Any = list(report.iter_parts())[1].get_payload()[1]  # type: ignore[index]
            assert (block["Action"], block["Status"]) == ("delivered", "2.0.0")
            assert block["Final-Recipient"] == "rfc822; bob@example.test"
            assert w.spool.messages() == []
    asyncio.run(scenario())
