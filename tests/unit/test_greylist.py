"""Greylisting: client networks, the triplet life cycle, the auto-allowlist, the bypass for
authenticated senders seen before, pruning, failing open, and several processes deciding
at once on one real greylist.db."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from appliance.checks.context import AuthOutcome, MessageContext
from appliance.checks.greylist import GreylistCheck, client_network, sender_domain, triplets
from appliance.checks.greylist_store import GreylistStore, Timing, Triplet
from appliance.checks.result import Verdict
from appliance.smtp import replies

pytestmark = pytest.mark.timeout(60)
TIMING = Timing(delay=300, expire=2 * 86_400, allow_for=35 * 86_400)
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def check(tmp_path: Path, clock: Clock) -> GreylistCheck:
    return GreylistCheck(GreylistStore.in_directory(tmp_path), TIMING, clock)


def attempt(check: GreylistCheck, client: str = "192.0.2.10",
            sender: str = "news@sender.example", recipients: tuple[str, ...] = (
                "alice@example.test",), auth: AuthOutcome | None = None) -> Verdict:
    context = MessageContext(queue_id="Q1", client_ip=client, mail_from=sender,
                             recipients=recipients, auth=auth)
    result = asyncio.run(check.check(b"Subject: x\r\n\r\nx\r\n", context))
    if result.verdict == Verdict.TEMPFAIL:
        assert result.reply == replies.POLICY_DEFERRED
    return result.verdict


def test_client_networks_are_v4_slash_24_and_v6_slash_64() -> None:
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_network("::ffff:192.0.2.9") == "192.0.2.0/24"
    assert client_network("unknown") == "unknown"


def test_triplets_and_sender_domain() -> None:
    context = MessageContext(queue_id="Q", client_ip="192.0.2.1", mail_from="A@Sender.Example",
                             recipients=("Bob@example.test", "bob@example.test", "c@x.test"))
    assert triplets(context) == (
        Triplet("192.0.2.0/24", "a@sender.example", "bob@example.test"),
        Triplet("192.0.2.0/24", "a@sender.example", "c@x.test"))
    assert sender_domain("A@Sender.Example") == "sender.example"
    assert sender_domain("") == ""


def test_first_attempt_early_retry_then_retry_after_the_delay(check: GreylistCheck,
                                                             clock: Clock) -> None:
    assert attempt(check) == Verdict.TEMPFAIL
    clock.now += 60
    assert attempt(check) == Verdict.TEMPFAIL          # before greylist.delay
    clock.now += 240
    assert attempt(check) == Verdict.ACCEPT            # 300 s after the first attempt
    clock.now += 5
    assert attempt(check) == Verdict.ACCEPT


def test_a_pass_allowlists_the_network_for_the_sender_domain(check: GreylistCheck,
                                                             clock: Clock) -> None:
    attempt(check)
    clock.now += 301
    assert attempt(check) == Verdict.ACCEPT
    # another address of the same /24, another sender and recipient of the same domain
    assert attempt(check, "192.0.2.200", "other@sender.example", ("bob@example.test",)) \
        == Verdict.ACCEPT
    # another network, or another sender domain, is greylisted
    assert attempt(check, "198.51.100.1") == Verdict.TEMPFAIL
    assert attempt(check, sender="x@elsewhere.example") == Verdict.TEMPFAIL
    # the allowlist ends allow_days after the last message
    clock.now += TIMING.allow_for + 1
    assert attempt(check, "192.0.2.200", "new@sender.example") == Verdict.TEMPFAIL


def test_a_retry_after_expire_starts_over(check: GreylistCheck, clock: Clock) -> None:
    attempt(check)
    clock.now += TIMING.expire + 1
    assert attempt(check) == Verdict.TEMPFAIL
    clock.now += 301
    assert attempt(check) == Verdict.ACCEPT


def test_every_recipient_must_have_waited(check: GreylistCheck, clock: Clock) -> None:
    attempt(check, recipients=("alice@example.test",))
    clock.now += 301
    both = ("alice@example.test", "bob@example.test")
    assert attempt(check, client="203.0.113.5", recipients=both) == Verdict.TEMPFAIL
    clock.now += 301
    assert attempt(check, client="203.0.113.5", recipients=both) == Verdict.ACCEPT


def test_authenticated_senders_seen_before_skip_greylisting(check: GreylistCheck,
                                                            clock: Clock) -> None:
    dkim = AuthOutcome(dkim_pass=("sender.example",))
    assert attempt(check, auth=dkim) == Verdict.TEMPFAIL     # authenticated, not seen yet
    clock.now += 301
    assert attempt(check, auth=dkim) == Verdict.ACCEPT       # accepted: now it is known
    # from a network never seen, to another recipient: the DKIM domain is known
    assert attempt(check, "198.51.100.7", recipients=("bob@example.test",), auth=dkim) \
        == Verdict.ACCEPT
    spf = AuthOutcome(spf="pass", spf_domain="SENDER.example")
    assert attempt(check, "203.0.113.9", auth=spf) == Verdict.ACCEPT
    failed_spf = AuthOutcome(spf="fail", spf_domain="sender.example")
    assert attempt(check, "203.0.114.9", auth=failed_spf) == Verdict.TEMPFAIL
    assert attempt(check, "203.0.115.9") == Verdict.TEMPFAIL     # no authentication
    # a bypassed message allowlists its network too, as a passed retry does
    assert attempt(check, "203.0.113.10") == Verdict.ACCEPT


def test_prune_removes_expired_rows(tmp_path: Path) -> None:
    store = GreylistStore.in_directory(tmp_path)
    store.decide([Triplet("192.0.2.0/24", "a@x.example", "b@example.test")], "x.example",
                 frozenset(), T0, TIMING)
    store.decide([Triplet("198.51.100.0/24", "a@y.example", "b@example.test")], "y.example",
                 frozenset({"y.example"}), T0, TIMING)
    store.decide([Triplet("198.51.100.0/24", "a@y.example", "b@example.test")], "y.example",
                 frozenset({"y.example"}), T0 + 400, TIMING)
    assert store.counts() == {"triplets": 2, "allowed": 1, "known_senders": 1}
    assert store.prune(T0 + TIMING.expire + 1, TIMING) == 1        # the unpassed triplet
    assert store.counts() == {"triplets": 1, "allowed": 1, "known_senders": 1}
    assert store.prune(T0 + 400 + TIMING.allow_for + 1, TIMING) == 3
    assert store.counts() == {"triplets": 0, "allowed": 0, "known_senders": 0}


def test_an_unusable_database_fails_open(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "greylist.db").mkdir()           # not a database file: sqlite3 fails
    check = GreylistCheck(GreylistStore.in_directory(tmp_path), TIMING, clock)
    assert attempt(check) == Verdict.ACCEPT


def test_no_recipients_is_accepted(check: GreylistCheck) -> None:
    assert attempt(check, recipients=()) == Verdict.ACCEPT


def _decide_many(path: str, worker: int, rounds: int, now: float) -> list[bool]:
    store = GreylistStore(Path(path))
    results = []
    for i in range(rounds):
        shared = Triplet("192.0.2.0/24", "a@x.example", f"r{i}@example.test")
        own = Triplet(f"10.{worker}.0.0/24", "a@x.example", f"r{i}@example.test")
        for item in (shared, own):
            results.append(store.decide([item], "x.example", frozenset(), now, TIMING).passed)
    store.close()
    return results


def test_worker_processes_share_the_database(tmp_path: Path) -> None:
    """Four processes decide at once: no "database is locked", each triplet stored once,
    and a retry in any process after the delay passes."""
    path = tmp_path / "greylist.db"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        runs = pool.starmap(_decide_many, [(str(path), w, 25, T0) for w in range(4)])
    assert not any(any(run) for run in runs)             # every first attempt deferred
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM triplets").fetchone()[0] == 25 + 4 * 25
    db.close()
    with context.Pool(2) as pool:
        retries = pool.starmap(_decide_many, [(str(path), w, 25, T0 + 301) for w in range(2)])
    assert all(all(run) for run in retries)
