"""Giving freed heap back to the operating system after a large response.

A FETCH of many whole messages, or a full sync, passes megabytes through the heap in
batches; Python frees them, but glibc keeps the freed pages in its arenas, so the engine's
RSS stays at its high-water mark. `malloc_trim(0)` returns those pages. It is glibc's (on
other C libraries it does nothing here) and costs a millisecond or so, so callers ask for it
only after a response of `TRIM_AFTER` octets or more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

TRIM_AFTER = 4 * 1024 * 1024


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return freed heap pages to the system; False when the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
