"""The maintenance window: when an installed update may reboot the appliance. Pure: the
admin's text ("now", or "HH:MM-HH:MM" local time, possibly across midnight) and the time
now give the reboot time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

NOW = "now"
_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Window:
    """`start`-`end` each day (end < start: the window spans midnight); None = at once."""

    start: time | None = None
    end: time | None = None

    @property
    def immediate(self) -> bool:
        return self.start is None


def parse_window(text: str) -> Window:
    """"now" or "HH:MM-HH:MM" (24-hour clock, local time).

    Raises:
        ValueError: anything else, or an empty window (start equal to end).
    """
    text = text.strip()
    if text == NOW:
        return Window()
    found = _WINDOW.fullmatch(text)
    if found is None:
        raise ValueError(f"expected 'now' or HH:MM-HH:MM, not {text!r}")
    start = time(int(found.group(1)), int(found.group(2)))
    end = time(int(found.group(3)), int(found.group(4)))
    if start == end:
        raise ValueError("the maintenance window is empty (start equals end)")
    return Window(start, end)


def inside(window: Window, moment: datetime) -> bool:
    """Whether `moment` (local time) lies in the window."""
    if window.start is None or window.end is None:
        return True
    now = moment.time().replace(second=0, microsecond=0)
    if window.start < window.end:
        return window.start <= now < window.end
    return now >= window.start or now < window.end


def next_reboot(window: Window, now: datetime) -> datetime:
    """`now` when inside the window (or "now"), else the window's next start."""
    if window.start is None or inside(window, now):
        return now
    start = now.replace(hour=window.start.hour, minute=window.start.minute, second=0,
                        microsecond=0)
    return start if start > now else start + timedelta(days=1)
