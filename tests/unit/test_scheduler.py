"""Retry policy math: backoff with jitter and cap, expiry, delay warnings, NOTIFY."""

from __future__ import annotations

import pytest

from appliance.outbound.scheduler import (
    EXPIRED_REPLY,
    Notice,
    RetryPolicy,
    backoff,
    decide,
    wants,
)
from appliance.outbound.types import Outcome, RecipientResult
from appliance.storage.interfaces import QueuedRecipient, RecipientState

POLICY = RetryPolicy(first_retry=300, max_retry=3600, max_age=5 * 86400,
                     delay_warning=4 * 3600, jitter=0.2)
MIDDLE = 0.5     # unit_random that gives no jitter


def rcpt(notify: tuple[str, ...] = (), attempts: int = 0,
         warned: bool = False) -> QueuedRecipient:
    return QueuedRecipient("x@remote.test", notify, None, RecipientState.QUEUED, attempts,
                           0.0, "", None, warned)


def result(outcome: Outcome, reply: str = "451 4.3.0 busy",
           **details: str) -> RecipientResult:
    return RecipientResult("x@remote.test", outcome, reply, "mx.remote.test", details)


@pytest.mark.parametrize(("attempts", "expected"), [
    (1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (6, 3600), (200, 3600)])
def test_backoff_doubles_to_the_cap(attempts: int, expected: float) -> None:
    assert backoff(POLICY, attempts, MIDDLE) == pytest.approx(expected)


def test_backoff_jitter_bounds() -> None:
    assert backoff(POLICY, 1, 0.0) == pytest.approx(240)
    assert backoff(POLICY, 1, 0.999999) == pytest.approx(360, rel=1e-4)
    assert backoff(POLICY, 9, 0.0) == pytest.approx(3600 * 0.8)


def test_wants_defaults_to_failure_and_delay() -> None:
    assert wants((), "FAILURE")
    assert wants((), "DELAY")
    assert not wants((), "SUCCESS")
    assert not wants(("NEVER",), "FAILURE")
    assert wants(("SUCCESS",), "SUCCESS")
    assert not wants(("SUCCESS",), "FAILURE")


def test_deferred_is_retried_after_backoff() -> None:
    d = decide(POLICY, rcpt(attempts=2), result(Outcome.DEFERRED), 1000.0, 1060.0, MIDDLE)
    assert d.update.state is RecipientState.QUEUED
    assert d.update.next_try == pytest.approx(1060 + 1200)
    assert d.update.last_reply == "451 4.3.0 busy"
    assert d.update.attempted
    assert d.notice is Notice.NONE


def test_next_try_never_passes_the_expiry() -> None:
    queued = 0.0
    now = POLICY.max_age - 10
    d = decide(POLICY, rcpt(attempts=50, warned=True), result(Outcome.DEFERRED), queued,
               now, MIDDLE)
    assert d.update.next_try == POLICY.max_age


def test_deferred_past_max_age_fails_with_expiry_and_bounces() -> None:
    d = decide(POLICY, rcpt(attempts=50), result(Outcome.DEFERRED), 0.0, POLICY.max_age,
               MIDDLE)
    assert d.update.state is RecipientState.FAILED
    assert d.update.last_reply.startswith(EXPIRED_REPLY)
    assert "451 4.3.0 busy" in d.update.last_reply
    assert d.notice is Notice.FAILED


def test_delay_warning_once_after_the_threshold() -> None:
    early = decide(POLICY, rcpt(), result(Outcome.DEFERRED), 0.0, 3 * 3600, MIDDLE)
    assert early.notice is Notice.NONE
    assert not early.update.delay_warned
    late = decide(POLICY, rcpt(), result(Outcome.DEFERRED), 0.0, 4 * 3600, MIDDLE)
    assert late.notice is Notice.DELAYED
    assert late.update.delay_warned
    again = decide(POLICY, rcpt(warned=True), result(Outcome.DEFERRED), 0.0, 5 * 3600, MIDDLE)
    assert again.notice is Notice.NONE
    assert again.update.delay_warned


@pytest.mark.parametrize("notify", [("NEVER",), ("FAILURE",), ("SUCCESS",)])
def test_delay_warning_only_if_notify_allows(notify: tuple[str, ...]) -> None:
    d = decide(POLICY, rcpt(notify), result(Outcome.DEFERRED), 0.0, 5 * 3600, MIDDLE)
    assert d.notice is Notice.NONE


def test_delay_warning_zero_means_never() -> None:
    policy = RetryPolicy(delay_warning=0)
    d = decide(policy, rcpt(), result(Outcome.DEFERRED), 0.0, 86400, MIDDLE)
    assert d.notice is Notice.NONE


@pytest.mark.parametrize(("notify", "notice"), [
    ((), Notice.FAILED), (("FAILURE",), Notice.FAILED), (("NEVER",), Notice.NONE),
    (("SUCCESS", "DELAY"), Notice.NONE)])
def test_failure_bounces_if_notify_allows(notify: tuple[str, ...], notice: Notice) -> None:
    d = decide(POLICY, rcpt(notify), result(Outcome.FAILED, "550 5.1.1 no"), 0.0, 5.0, MIDDLE)
    assert d.update.state is RecipientState.FAILED
    assert d.notice is notice


def test_delivery_owes_relayed_report_only_when_peer_cannot() -> None:
    delivered = result(Outcome.DELIVERED, "250 2.0.0 ok")
    passed_on = decide(POLICY, rcpt(("SUCCESS",)), delivered, 0.0, 5.0, MIDDLE)
    assert passed_on.update.state is RecipientState.DELIVERED
    assert passed_on.notice is Notice.NONE
    owed = decide(POLICY, rcpt(("SUCCESS",)), result(Outcome.DELIVERED, "250 ok",
                                                      dsn_relayed="true"), 0.0, 5.0, MIDDLE)
    assert owed.notice is Notice.RELAYED
    unasked = decide(POLICY, rcpt(), result(Outcome.DELIVERED, "250 ok", dsn_relayed="true"),
                     0.0, 5.0, MIDDLE)
    assert unasked.notice is Notice.NONE
