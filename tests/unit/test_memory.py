"""Returning freed heap to the system after large responses (glibc's malloc_trim)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from appliance.core.memory import release_free_memory


def test_release_free_memory_works_on_glibc() -> None:
    blocks = [bytes(1024 * 1024) for _ in range(32)]   # 32 MiB through the heap
    del blocks
    expected = platform.libc_ver()[0] == "glibc"
    assert release_free_memory() is expected


_ARENA_CHURN = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
import psutil
from appliance.core.memory import fix_mmap_threshold, release_free_memory
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold() is True
def churn(_):                 # what an argon2 verify does in the guard's threads
    block = bytearray(8 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    return len(block)
before = psutil.Process().memory_info().rss
with ThreadPoolExecutor(4) as pool:
    sum(pool.map(churn, range(400)))
release_free_memory()
print((psutil.Process().memory_info().rss - before) // 1_000_000)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_fixed_mmap_threshold_keeps_big_blocks_out_of_thread_arenas() -> None:
    """1,000 logins used to leave tens of MB in the worker threads' arenas (issue 4)."""
    grown = int(subprocess.run([sys.executable, "-c", _ARENA_CHURN, "fixed"], check=True,
                               capture_output=True, text=True, timeout=120).stdout)
    assert grown < 12, f"{grown} MB kept after 400 blocks of 8 MiB were freed"
