"""A sliding-window rate limiter (pure): at most `limit` events per key in any `window` seconds.

Used for the per-account submission limit; any check that counts events per key can use it.
Each key keeps the times of its last `limit` events, so memory is bounded by keys x limit;
keys whose events all left the window are dropped when seen again or by `prune`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Counts events per key and refuses the one that would exceed the limit."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def allowed(self, key: str) -> bool:
        """Would one more event for `key` be within the limit (nothing is recorded)?"""
        return len(self._current(key, self._clock())) < self._limit

    def acquire(self, key: str) -> bool:
        """Record one event for `key` if the limit allows it; False (nothing recorded) if not."""
        now = self._clock()
        events = self._current(key, now)
        if len(events) >= self._limit:
            return False
        self._events.setdefault(key, events).append(now)
        return True

    def retry_after(self, key: str) -> float:
        """Seconds until one more event for `key` would be allowed (0 if it is now)."""
        now = self._clock()
        events = self._current(key, now)
        if len(events) < self._limit:
            return 0.0
        return events[0] + self._window - now

    def prune(self) -> None:
        """Drop every key whose events have all left the window."""
        now = self._clock()
        for key in list(self._events):
            self._current(key, now)

    def __len__(self) -> int:
        return len(self._events)

    def _current(self, key: str, now: float) -> deque[float]:
        """The key's events still inside the window (older ones are dropped)."""
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self._window:
            events.popleft()
        if not events:
            del self._events[key]
        return events
