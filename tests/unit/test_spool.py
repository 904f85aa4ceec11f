"""The spool: durable enqueue with group commit, state updates, recovery rules."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from appliance.core.errors import DeliveryError
from appliance.outbound import spool as spool_module
from appliance.outbound.spool import Spool
from appliance.outbound.types import OutboundRecipient
from appliance.storage.interfaces import (
    NewMessage,
    RecipientState,
    RecipientUpdate,
    Settled,
)

CONTENT = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


def new(queue_id: str, *addresses: str, **kwargs: object) -> NewMessage:
    recipients = tuple(OutboundRecipient(a, ("FAILURE",), f"rfc822;{a}") for a in addresses)
    return NewMessage(queue_id, "sender@example.test", recipients or (
        OutboundRecipient("x@remote.test"),), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "queue")


def test_enqueue_then_get_read_list(spool: Spool) -> None:
    spool.enqueue(new("Q1", "a@remote.test", "b@other.test", envid="E1", ret="HDRS",
                      smtputf8=True), CONTENT)
    message = spool.get("Q1")
    assert message is not None
    assert (message.sender, message.envid, message.ret, message.smtputf8) == (
        "sender@example.test", "E1", "HDRS", True)
    assert message.size == len(CONTENT)
    assert [r.address for r in message.recipients] == ["a@remote.test", "b@other.test"]
    assert message.recipients[0].notify == ("FAILURE",)
    assert message.recipients[0].orcpt == "rfc822;a@remote.test"
    assert all(r.state is RecipientState.QUEUED and r.attempts == 0
               for r in message.recipients)
    assert spool.read("Q1") == CONTENT
    assert [m.queue_id for m in spool.messages()] == ["Q1"]
    assert (spool.messages_dir / "Q1").stat().st_mode & 0o777 == 0o600


def test_due_next_due_and_exclude(spool: Spool) -> None:
    spool.enqueue(new("Q1"), CONTENT)
    spool.enqueue(new("Q2"), CONTENT)
    now = time.time()
    assert {m.queue_id for m in spool.due(now + 1, 10)} == {"Q1", "Q2"}
    assert [m.queue_id for m in spool.due(now + 1, 10, frozenset({"Q1"}))] == ["Q2"]
    spool.update("Q1", [RecipientUpdate("x@remote.test", RecipientState.QUEUED, now + 600,
                                        "451 4.4.1 later")])
    assert [m.queue_id for m in spool.due(now + 1, 10)] == ["Q2"]
    next_due = spool.next_due()
    assert next_due is not None
    assert next_due <= now + 1


def test_update_counts_attempts_and_records_reply(spool: Spool) -> None:
    spool.enqueue(new("Q1", "a@remote.test"), CONTENT)
    assert spool.update("Q1", [RecipientUpdate("a@remote.test", RecipientState.QUEUED, 5.0,
                                               "451 4.3.0 busy", "mx.remote.test", True)])
    recipient = spool.get("Q1").recipients[0]  # type: ignore[union-attr]
    assert (recipient.attempts, recipient.last_reply, recipient.remote_host,
            recipient.delay_warned, recipient.next_try) == (
        1, "451 4.3.0 busy", "mx.remote.test", True, 5.0)
    assert not spool.update("NOPE", [])


def test_remove_and_retry(spool: Spool) -> None:
    spool.enqueue(new("Q1"), CONTENT)
    spool.update("Q1", [RecipientUpdate("x@remote.test", RecipientState.QUEUED, 1e12, "x")])
    assert spool.retry("Q1", 100.0) == 1
    assert spool.get("Q1").recipients[0].next_try == 100.0  # type: ignore[union-attr]
    assert spool.retry(None, 50.0) == 1
    assert spool.remove("Q1")
    assert spool.get("Q1") is None
    assert not (spool.messages_dir / "Q1").exists()
    assert not spool.remove("Q1")


def test_queue_ids_are_checked_before_they_name_files(spool: Spool) -> None:
    with pytest.raises(ValueError, match="not a queue id"):
        spool.read("../../etc/passwd")


def test_duplicate_queue_id_is_refused_and_leaves_the_first(spool: Spool) -> None:
    spool.enqueue(new("Q1"), CONTENT)
    with pytest.raises(DeliveryError) as caught:
        spool.enqueue(new("Q1"), b"other")
    assert caught.value.reply.startswith("451 4.3.0")
    assert spool.read("Q1") == CONTENT


def test_failed_row_commit_removes_the_file(spool: Spool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rows: object) -> None:
        raise OSError("no space left")
    monkeypatch.setattr(spool._group, "_commit", broken)
    with pytest.raises(DeliveryError):
        spool.enqueue(new("Q9"), CONTENT)
    assert not (spool.messages_dir / "Q9").exists()


def test_group_commit_shares_directory_fsyncs_and_transactions(
        spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs: list[Path] = []

    def slow_fsync(path: Path) -> None:
        time.sleep(0.05)
        fsyncs.append(path)

    monkeypatch.setattr(spool_module, "fsync_dir", slow_fsync)
    start = threading.Barrier(30)

    def enqueue(n: int) -> None:
        start.wait()
        spool.enqueue(new(f"Q{n}"), CONTENT)

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spool.messages()) == 30
    assert 1 <= len(fsyncs) <= 3, "30 concurrent messages should share a few commits"


def test_messages_survive_reopening(tmp_path: Path) -> None:
    first = Spool(tmp_path / "queue")
    first.enqueue(new("Q1"), CONTENT)
    first.close()
    again = Spool(tmp_path / "queue")
    assert [m.queue_id for m in again.messages()] == ["Q1"]


# -- recovery -----------------------------------------------------------------------------

def test_recover_removes_orphan_files(spool: Spool) -> None:
    spool.enqueue(new("Q1"), CONTENT)
    (spool.messages_dir / "ORPHAN1").write_bytes(b"half a mess")
    counts = spool.recover()
    assert counts == {"orphan_files": 1, "finished": 0, "lost": 0, "queued": 1}
    assert sorted(os.listdir(spool.messages_dir)) == ["Q1"]


def test_recover_keeps_fresh_orphans_within_the_grace(spool: Spool) -> None:
    (spool.messages_dir / "INFLIGHT").write_bytes(b"being committed by another process")
    assert spool.recover(orphan_grace=60)["orphan_files"] == 0
    assert (spool.messages_dir / "INFLIGHT").exists()


def test_recover_flags_rows_without_files_as_lost_and_due(spool: Spool) -> None:
    spool.enqueue(new("Q1"), CONTENT)
    spool.update("Q1", [RecipientUpdate("x@remote.test", RecipientState.QUEUED, 1e12, "x")])
    os.unlink(spool.messages_dir / "Q1")
    counts = spool.recover()
    assert counts["lost"] == 1
    assert [m.queue_id for m in spool.due(time.time() + 1, 10)] == ["Q1"]


def test_recover_removes_finished_messages(spool: Spool) -> None:
    spool.enqueue(new("Q1"), CONTENT)
    spool.update("Q1", [RecipientUpdate("x@remote.test", RecipientState.DELIVERED, 0, "250")])
    assert spool.recover()["finished"] == 1
    assert spool.get("Q1") is None
    assert not (spool.messages_dir / "Q1").exists()


def test_due_skips_messages_that_only_have_busy_domains(spool: Spool) -> None:
    spool.enqueue(new("Q1", "a@busy.test"), CONTENT)
    spool.enqueue(new("Q2", "b@busy.test", "c@free.test"), CONTENT)
    spool.enqueue(new("Q3", "d@free.test"), CONTENT)
    due = spool.due(time.time() + 1, 10, busy_domains=frozenset({"busy.test"}))
    assert [m.queue_id for m in due] == ["Q2", "Q3"]


def _backlog(spool: Spool, count: int, domain: str, start: float) -> None:
    """`count` rows inserted directly (enqueue's fsyncs would make a big backlog slow)."""
    with spool._transaction() as conn:
        for n in range(count):
            spool_module._insert(conn, new(f"B{domain[0]}{n}", f"r{n}@{domain}"), 10,
                                 start + n * 1e-3)


def test_due_with_a_large_backlog_returns_a_bounded_batch_in_order(spool: Spool) -> None:
    now = time.time()
    _backlog(spool, 5000, "one.test", now - 100)
    due = spool.due(now, 8, exclude=frozenset({"Bo0", "Bo2"}))
    assert [m.queue_id for m in due] == ["Bo1", "Bo3", "Bo4", "Bo5", "Bo6", "Bo7", "Bo8",
                                         "Bo9"]
    plan = " ".join(str(r[-1]) for r in spool._conn.execute(
        "EXPLAIN QUERY PLAN SELECT queue_id FROM recipients WHERE state = 'queued' "
        "AND next_try <= 1 ORDER BY next_try LIMIT 10"))
    assert "recipients_due" in plan
    assert "TEMP B-TREE" not in plan


def test_due_looks_at_a_bounded_window_behind_busy_domains(spool: Spool) -> None:
    now = time.time()
    _backlog(spool, spool_module.DUE_SCAN_ROWS + 10, "busy.test", now - 100)
    _backlog(spool, 3, "free.test", now - 50)
    busy = frozenset({"busy.test"})
    assert spool.due(now, 8, busy_domains=busy) == []       # behind the window: waits
    assert [m.queue_id for m in spool.due(now, 8)][:2] == ["Bb0", "Bb1"]


def test_settle_removes_a_finished_message_in_the_same_commit(spool: Spool) -> None:
    spool.enqueue(new("Q1", "a@remote.test", "b@remote.test"), CONTENT)
    now = time.time()
    done = RecipientUpdate("a@remote.test", RecipientState.DELIVERED, now, "250 ok")
    assert spool.settle("Q1", [done]) is Settled.KEPT
    assert (spool.messages_dir / "Q1").exists()
    later = RecipientUpdate("b@remote.test", RecipientState.DELIVERED, now, "250 ok")
    assert spool.settle("Q1", [later]) is Settled.REMOVED
    assert spool.get("Q1") is None
    assert not (spool.messages_dir / "Q1").exists()
    assert spool.settle("Q1", [later]) is Settled.GONE


def test_concurrent_settles_share_commits(spool: Spool) -> None:
    for n in range(20):
        spool.enqueue(new(f"Q{n}", "a@remote.test"), CONTENT)
    now = time.time()
    done = [RecipientUpdate("a@remote.test", RecipientState.DELIVERED, now, "250 ok")]
    start = threading.Barrier(20)
    outcomes: list[Settled] = []

    def settle(n: int) -> None:
        start.wait()
        outcomes.append(spool.settle(f"Q{n}", done))

    threads = [threading.Thread(target=settle, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [Settled.REMOVED] * 20
    assert spool.messages() == []
    assert list(spool.messages_dir.iterdir()) == []
