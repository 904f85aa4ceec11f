"""Routing accepted recipients, and the Deliverer: Maildir copies + queue entries, durably."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.core.errors import DeliveryError, MailError
from appliance.outbound.spool import Spool
from appliance.outbound.types import OutboundRecipient
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted, refused_destination, route
from appliance.storage.interfaces import Mailbox, RecipientStatus, Resolution
from appliance.storage.maildir.store import MaildirStore

ALICE = Mailbox(1, "alice@example.test", Path("mail/example.test/alice"))
BOB = Mailbox(2, "bob@example.test", Path("mail/example.test/bob"))
MESSAGE = b"Subject: hi\r\n\r\nline one\r\nline two\r\n"


def deliver(mailboxes: tuple[Mailbox, ...] = (), remote: tuple[str, ...] = ()) -> Resolution:
    return Resolution(RecipientStatus.DELIVER, mailboxes, remote)


def test_route_merges_mailboxes_and_remote_targets_once() -> None:
    plan = route([
        Accepted("alice@example.test", deliver((ALICE,))),
        Accepted("team@example.test", deliver((ALICE, BOB), ("x@remote.test",)),
                 ("FAILURE",)),
        Accepted("fwd@example.test", deliver((), ("X@remote.test",))),
    ])
    assert plan.mailboxes == (ALICE, BOB)
    assert plan.remote == (OutboundRecipient("x@remote.test", ("FAILURE",),
                                             "rfc822;team@example.test"),)
    assert plan.delivered_locally == ()


def test_route_keeps_given_orcpt_and_routes_not_local_to_itself() -> None:
    plan = route([
        Accepted("fwd@example.test", deliver((), ("x@remote.test",)), ("NEVER",),
                 "rfc822;orig@elsewhere.test"),
        Accepted("y@remote.test", Resolution(RecipientStatus.NOT_LOCAL), ("SUCCESS",)),
        Accepted("gone@example.test", Resolution(RecipientStatus.UNKNOWN)),
    ])
    assert plan.remote == (
        OutboundRecipient("x@remote.test", ("NEVER",), "rfc822;orig@elsewhere.test"),
        OutboundRecipient("y@remote.test", ("SUCCESS",), None))
    assert plan.mailboxes == ()


def test_route_names_local_recipients_that_want_success_reports() -> None:
    wanted = Accepted("alice@example.test", deliver((ALICE,)), ("SUCCESS", "FAILURE"))
    plan = route([wanted, Accepted("bob@example.test", deliver((BOB,)))])
    assert plan.delivered_locally == (wanted,)


def test_route_utf8_original_recipient() -> None:
    plan = route([Accepted("jörg@example.test", deliver((), ("x@remote.test",)))])
    assert plan.remote[0].orcpt == "utf-8;jörg@example.test"


# -- Deliverer ------------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.woken = 0
        self.successes: list[tuple[str, Sequence[Accepted]]] = []

    def wake(self) -> None:
        self.woken += 1

    def success(self, queue_id: str, sender: str, envid: str | None, message: bytes,
                recipients: Sequence[Accepted]) -> None:
        self.successes.append((queue_id, recipients))


def make(tmp_path: Path, recorder: Recorder, **kwargs: object) -> tuple[Deliverer, Spool]:
    spool = Spool(tmp_path / "queue")
    executor = ThreadPoolExecutor(4)
    deliverer = Deliverer(MaildirStore(tmp_path), spool, executor, on_queued=recorder.wake,
                          on_local_success=recorder.success, **kwargs)  # type: ignore[arg-type]
    return deliverer, spool


def maildir_files(tmp_path: Path, box: Mailbox) -> list[bytes]:
    new = tmp_path / box.maildir / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []


def test_accept_stores_locally_with_lf_and_queues_remote_with_crlf(tmp_path: Path) -> None:
    recorder = Recorder()
    deliverer, spool = make(tmp_path, recorder)
    queue_id = asyncio.run(deliverer.accept(
        MESSAGE, "sender@example.org",
        [Accepted("alice@example.test", deliver((ALICE,), ("x@remote.test",)))],
        envid="ENV", ret="FULL", queue_id="QTEST1"))
    assert queue_id == "QTEST1"
    assert maildir_files(tmp_path, ALICE) == [MESSAGE.replace(b"\r\n", b"\n")]
    queued = spool.get("QTEST1")
    assert queued is not None
    assert (queued.envid, queued.ret) == ("ENV", "FULL")
    assert spool.read("QTEST1") == MESSAGE
    assert recorder.woken == 1


def test_local_only_does_not_touch_the_queue(tmp_path: Path) -> None:
    recorder = Recorder()
    deliverer, spool = make(tmp_path, recorder)
    wanted = Accepted("alice@example.test", deliver((ALICE,)), ("SUCCESS",))
    asyncio.run(deliverer.accept(MESSAGE, "<>", [wanted]))
    assert spool.messages() == []
    assert recorder.woken == 0
    assert [r for _q, r in recorder.successes] == [(wanted,)]


def test_maildir_failure_unqueues_and_raises(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    deliverer, spool = make(tmp_path, recorder)

    def broken(message: bytes, mailboxes: Sequence[Mailbox]) -> None:
        raise DeliveryError("451 4.3.0 try later", "disk gone")

    monkeypatch.setattr(MaildirStore, "deliver", lambda self, m, b, folder="": broken(m, b))
    with pytest.raises(DeliveryError):
        asyncio.run(deliverer.accept(
            MESSAGE, "s@example.org",
            [Accepted("a@example.test", deliver((ALICE,), ("x@remote.test",)))]))
    assert spool.messages() == []
    assert list(spool.messages_dir.iterdir()) == []
    assert recorder.woken == 0


def test_space_floor_refuses_before_writing(tmp_path: Path) -> None:
    def full(size: int) -> None:
        raise MailError("452 4.3.1 Insufficient system storage", f"{size} bytes")

    recorder = Recorder()
    deliverer, spool = make(tmp_path, recorder, check_space=full)
    target = [Accepted("a@example.test", deliver((ALICE,), ("x@remote.test",)))]
    with pytest.raises(MailError) as caught:
        asyncio.run(deliverer.accept(MESSAGE, "s@example.org", target))
    assert caught.value.reply.startswith("452 4.3.1")
    assert spool.messages() == []
    assert maildir_files(tmp_path, ALICE) == []
    # bounces are not held back by the floor
    asyncio.run(deliverer.accept(MESSAGE, "", target, enforce_floor=False))
    assert len(spool.messages()) == 1


@pytest.mark.parametrize(("domain", "refused"), [
    ("[127.0.0.1]", True), ("[IPv6:::1]", True), ("[192.0.2.1]", True),   # address literals
    ("localhost", True), ("LOCALHOST.", True), ("mail.localhost", True),  # RFC 6761 6.3
    ("127.0.0.1", True), ("10.1.2.3", True), ("2130706433", True),        # numeric last label
    ("mx.mailstead.test", True), ("MX.Mailstead.Test.", True),            # ourselves: a loop
    ("example.org", False), ("localhost.example.org", False), ("mail.test", False),
    ("127.0.0.1.example.org", False), ("xn--bcher-kva.example", False),
])
def test_refused_destination(domain: str, refused: bool) -> None:
    assert refused_destination(domain, "mx.mailstead.test") is refused
