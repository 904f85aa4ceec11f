"""A clock the test moves by hand (`clock.now += 60`), for code that takes a `() -> float`."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
