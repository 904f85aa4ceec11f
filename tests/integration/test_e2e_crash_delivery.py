"""SIGKILL of the real engine in the middle of delivering to a real Postfix, then a restart.

Forty messages are submitted (one session, STARTTLS + AUTH) while later.test's Postfix is
down, so they all wait in the queue; then Postfix starts, the retries pour in, and the
engine is killed once Postfix has stored a few. Right after the kill, `mailstead queue list`
(offline, on the spool) must account for every message Postfix does not have yet. After the
restart everything arrives: none lost, and a duplicate only for an attempt Postfix had
accepted when the kill came before the engine recorded it (at-least-once, RFC 5321 6.1).
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.e2e import queue_empty, queue_json, send_one, wait_until
from harness.engine import EngineProcess
from harness.submission import message, smtp_client
from peers.mail_world import MailWorld, mail_world, maildir_messages, postfix_queue_empty

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
ALICE = "alice@example.test"
RECIPIENT = "alice@later.test"
TOTAL = 40
KILL_AT = 8                 # messages in Postfix's Maildir when the engine is killed
MAX_PER_DOMAIN = 4          # attempts to one domain at once: the most that can be in flight


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    with mail_world("e2e-crash") as started:
        yield started


def subjects(world: MailWorld) -> list[str]:
    return [str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
            for raw in maildir_messages(world.later, RECIPIENT)]


def test_sigkill_during_delivery_loses_nothing(world: MailWorld, tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", **world.engine_settings(
        queue__max_retry=1, queue__max_per_domain=MAX_PER_DOMAIN))
    engine.start()
    engine.add_domain("example.test")
    engine.add_account(ALICE)
    try:
        with smtp_client(engine, ALICE) as client:       # one session, reused
            queued = {send_one(client, ALICE, [RECIPIENT],
                               message(ALICE, RECIPIENT, f"crash-{n:02d}")): f"crash-{n:02d}"
                      for n in range(TOTAL)}
        assert len(queued) == TOTAL
        world.later.start()
        wait_until(lambda: world.later.count_delivered(RECIPIENT) >= KILL_AT, 30,
                   f"{KILL_AT} deliveries")
        engine.kill()

        # At the kill: whatever Postfix has not stored is still in our spool.
        wait_until(lambda: postfix_queue_empty(world.later), 10, "Postfix's queue to drain")
        left = {m["queue_id"] for m in queue_json(engine, "list")}
        stored = set(subjects(world))
        assert left, "everything was delivered before the kill: nothing was tested"
        assert left <= set(queued)
        assert {queued[q] for q in set(queued) - left} <= stored    # done = really there
        assert {queued[q] for q in left} | stored == set(queued.values())

        engine.start()
        wait_until(lambda: queue_empty(engine), 30, "the queue to drain after the restart")
        wait_until(lambda: postfix_queue_empty(world.later), 10, "Postfix's queue to drain")
    finally:
        if engine.proc is not None and engine.proc.poll() is None:
            engine.stop()
        world.later.stop()
    counts = Counter(subjects(world))
    duplicates = sum(counts.values()) - TOTAL
    print(f"\nSIGKILL during delivery: {len(left)} of {TOTAL} messages still queued at the "
          f"kill, {duplicates} delivered twice (at-least-once), 0 lost")
    assert set(counts) == set(queued.values())                 # none lost
    assert duplicates <= MAX_PER_DOMAIN                         # only attempts in flight
    assert all(n <= 2 for n in counts.values())
