"""The per-destination concurrency window (Postfix's feedback rules)."""

from __future__ import annotations

from appliance.outbound.concurrency import DestinationWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_starts_at_initial_and_grows_one_slot_per_windowful_of_answers() -> None:
    windows = DestinationWindows(initial=5, maximum=20, clock=Clock())
    assert windows.limit("a.test") == 5
    for _ in range(5):
        windows.record("a.test", answered=True)
    assert windows.limit("a.test") == 5          # 5 + 5 * (about 1/5) is just under 6
    windows.record("a.test", answered=True)
    assert windows.limit("a.test") == 6
    for _ in range(1000):
        windows.record("a.test", answered=True)
    assert windows.limit("a.test") == 20         # capped at the maximum
    assert windows.limit("b.test") == 5          # each destination has its own


def test_unanswered_attempts_narrow_the_window_down_to_one() -> None:
    windows = DestinationWindows(initial=5, maximum=20, clock=Clock())
    windows.record("down.test", answered=False)
    assert windows.limit("down.test") == 4
    for _ in range(100):
        windows.record("down.test", answered=False)
    assert windows.limit("down.test") == 1
    windows.record("down.test", answered=True)
    windows.record("down.test", answered=True)
    assert windows.limit("down.test") == 2       # 1 -> 2 -> 2.5: grows back


def test_an_unused_destination_starts_over() -> None:
    clock = Clock()
    windows = DestinationWindows(initial=2, maximum=10, forget_after=60, clock=clock)
    for _ in range(20):
        windows.record("a.test", answered=True)
    assert windows.limit("a.test") > 2
    clock.now += 61
    assert windows.limit("a.test") == 2
    for _ in range(20):
        windows.record("a.test", answered=True)
    clock.now += 61
    windows.forget_idle(busy=frozenset({"a.test"}))    # still in use: kept
    assert windows._windows["a.test"].size > 2
    clock.now += 61
    windows.forget_idle(busy=frozenset())
    assert "a.test" not in windows._windows


def test_initial_above_maximum_is_the_maximum() -> None:
    assert DestinationWindows(initial=5, maximum=2).limit("a.test") == 2
