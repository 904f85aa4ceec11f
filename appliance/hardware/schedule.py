"""When to start SMART self-tests (pure): a short test every `monitor.short_test_hours`, an
extended one every `monitor.long_test_days`; a long test due replaces the short one (it
reads everything the short one does). A drive already testing is left alone."""

from __future__ import annotations

from collections.abc import Mapping

HOUR = 3600


def due_test(now: float, last: Mapping[str, float], short_hours: int, long_days: int,
             running: bool = False) -> str | None:
    """"long", "short" or None for one disk. `last` has the start times of its previous
    "short" and "long" tests (a disk never tested counts its long test from `first`)."""
    if running:
        return None
    if long_days and now - last.get("long", last.get("first", now)) >= long_days * 24 * HOUR:
        return "long"
    if short_hours and ("short" not in last or now - last["short"] >= short_hours * HOUR):
        return "short"
    return None
