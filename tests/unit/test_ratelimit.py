"""The sliding-window limiter (pure, fake clock): at most N events per key in any window."""

from __future__ import annotations

import pytest

from appliance.core.ratelimit import SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_key_and_sliding_expiry() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60, clock)
    for second in (0, 10, 20):
        clock.now = second
        assert limiter.allowed("alice")
        assert limiter.acquire("alice")
    assert not limiter.allowed("alice")
    assert not limiter.acquire("alice")               # a refusal records nothing
    assert limiter.acquire("bob")                      # keys are independent
    assert limiter.retry_after("alice") == 40          # the event at 0 leaves at 60
    clock.now = 59.9
    assert not limiter.acquire("alice")
    clock.now = 60
    assert limiter.retry_after("alice") == 0
    assert limiter.acquire("alice")                    # one slot freed, one taken
    assert not limiter.acquire("alice")
    clock.now = 70
    assert limiter.acquire("alice")


def test_idle_keys_are_dropped() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 10, clock)
    for number in range(100):
        limiter.acquire(f"user{number}")
    assert len(limiter) == 100
    clock.now = 10
    limiter.prune()
    assert len(limiter) == 0
    assert limiter.acquire("user1")


def test_memory_per_key_is_bounded_by_the_limit() -> None:
    limiter = SlidingWindowLimiter(5, 3600, Clock())
    for _ in range(1000):
        limiter.acquire("alice")
    assert limiter.retry_after("alice") == 3600
    assert len(limiter._events["alice"]) == 5


@pytest.mark.parametrize(("limit", "window"), [(0, 10), (1, 0)])
def test_nonsense_limits_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(limit, window)
