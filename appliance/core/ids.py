"""Queue ids: short, unique, time-ordered names for one accepted message (logs, headers)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


def new_queue_id() -> str:
    """13 characters: 8 from the time in milliseconds, 5 random; no vowels, no words."""
    value = int(time.time() * 1000)
    stamp = []
    for _ in range(8):
        value, digit = divmod(value, len(_ALPHABET))
        stamp.append(_ALPHABET[digit])
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return "".join(reversed(stamp)) + tail
