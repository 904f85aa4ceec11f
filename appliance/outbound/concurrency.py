"""How many deliveries to one destination domain may run at once: a window per domain.

Postfix's queue manager does it this way and its defaults are what receiving sites are used
to: a destination starts at `initial` parallel deliveries (Postfix: 5), each attempt the
peer answered (it accepted or refused mail) widens the window by 1/window, so a window's
worth of answered attempts adds one slot, up to `maximum` (Postfix: 20); each attempt that
got no answer at all (every recipient deferred: no connection, a 4xx greeting, a timeout)
narrows it by 1/window, down to 1. A destination not used for `forget_after` seconds
starts over at `initial`. Pure bookkeeping: the runner asks `limit` and reports `record`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FORGET_AFTER = 300.0


@dataclass
class _Window:
    size: float
    used_at: float


class DestinationWindows:
    """Concurrency windows by destination domain."""

    def __init__(self, initial: int, maximum: int, forget_after: float = FORGET_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.initial = min(initial, maximum)
        self.forget_after = forget_after
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def limit(self, domain: str) -> int:
        """Deliveries to `domain` that may run at once now."""
        return int(self._window(domain).size)

    def record(self, domain: str, answered: bool) -> None:
        """One attempt to `domain` finished; `answered`: the peer accepted or refused mail."""
        window = self._window(domain)
        step = 1.0 / window.size
        if answered:
            window.size = min(float(self.maximum), window.size + step)
        else:
            window.size = max(1.0, window.size - step)

    def forget_idle(self, busy: frozenset[str]) -> None:
        """Drop the windows of domains not in `busy` and unused for `forget_after`."""
        cutoff = self._clock() - self.forget_after
        for domain in [d for d, w in self._windows.items()
                       if w.used_at < cutoff and d not in busy]:
            del self._windows[domain]

    def _window(self, domain: str) -> _Window:
        now = self._clock()
        window = self._windows.get(domain)
        if window is None or window.used_at < now - self.forget_after:
            window = self._windows[domain] = _Window(float(self.initial), now)
        window.used_at = now
        return window
