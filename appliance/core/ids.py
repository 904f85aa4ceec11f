"""Queue ids: short, unique, time-ordered names for one accepted message (logs, headers)."""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"
_BASE = len(_ALPHABET)
_STAMP_DIGITS, _RANDOM_DIGITS = 8, 5


def new_queue_id() -> str:
    """13 characters: 8 from the time in milliseconds, 5 random; no vowels, no words."""
    # Ids need to be unique, not secret: the random module (seeded from the OS, and again in
    # every forked worker) instead of secrets, which makes a getrandom() call per draw.
    return (_digits(int(time.time() * 1000), _STAMP_DIGITS)
            + _digits(random.randrange(_BASE ** _RANDOM_DIGITS), _RANDOM_DIGITS))


def _digits(value: int, count: int) -> str:
    """The last `count` digits of `value` in base 31 (our alphabet), most significant first."""
    out = []
    for _ in range(count):
        value, digit = divmod(value, _BASE)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))
