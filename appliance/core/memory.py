"""Giving freed heap back to the operating system after a burst of large allocations.

A FETCH of many whole messages, a full sync, or a run of logins (argon2 hashes take
megabytes each) passes megabytes through the heap, much of it in the worker threads' malloc
arenas; Python frees them, but glibc keeps the freed pages, so the engine's RSS stays at its
high-water mark. `malloc_trim(0)` returns those pages. It is glibc's (on other C libraries it
does nothing here) and costs a millisecond or so, so it is not run after every response:
`trim_after_burst` runs it once, in a worker thread, when `TRIM_QUIET` seconds have passed
without a new request (at the latest `TRIM_LATEST` seconds after the first), so a burst of
any length costs one trim and never delays a reply. Blocks of a megabyte or more do not
stay in the arenas at all once `fix_mmap_threshold` has run (the listeners call it at
start).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from typing import cast

TRIM_AFTER = 256 * 1024      # a response this large asks for a trim (`trim_after_burst`)
TRIM_QUIET = 0.5             # seconds without a new request before the trim runs
TRIM_LATEST = 5.0            # ... but no later than this after the first request
MMAP_THRESHOLD = 1024 * 1024     # blocks this big get their own mmap (`fix_mmap_threshold`)
_M_MMAP_THRESHOLD = -3           # mallopt's parameter number for it (glibc's malloc.h)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@functools.cache
def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve allocations of `threshold` octets or more with their own mmap, always (once
    per process; False where glibc's `mallopt` is missing).

    glibc raises its mmap threshold each time such a block is freed (up to 32 MiB), after
    which big blocks come from the arenas instead, and a worker thread's arena keeps them:
    1,000 logins (an argon2 hash takes megabytes, in the guard's threads) left 30 MB behind
    that no `malloc_trim` gave back. A fixed threshold also stops that adjustment."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """Return freed heap pages to the system; False when the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class BurstTrimmer:
    """Debounces `release_free_memory` for one event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: Executor | None,
                 quiet: float = TRIM_QUIET, latest: float = TRIM_LATEST) -> None:
        self._loop, self._executor = loop, executor
        self._quiet, self._latest = quiet, latest
        self._first: float | None = None          # when the pending burst began
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0                            # how many ran (for tests)

    def request(self) -> None:
        """Something large was freed (or is about to be): trim once things are quiet."""
        now = self._loop.time()
        if self._first is None:
            self._first = now
        if self._timer is not None:
            self._timer.cancel()
        when = min(now + self._quiet, self._first + self._latest)
        self._timer = self._loop.call_at(when, self._run)

    def _run(self) -> None:
        self._first = self._timer = None
        self.trims += 1
        self._loop.run_in_executor(self._executor, release_free_memory)


_trimmers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BurstTrimmer] = (
    weakref.WeakKeyDictionary())


def trim_after_burst(executor: Executor | None = None) -> None:
    """`BurstTrimmer.request` on the running loop's trimmer (made on first use)."""
    loop = asyncio.get_running_loop()
    trimmer = _trimmers.get(loop)
    if trimmer is None:
        trimmer = _trimmers[loop] = BurstTrimmer(loop, executor)
    trimmer.request()
