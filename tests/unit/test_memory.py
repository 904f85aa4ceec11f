"""Returning freed heap to the system after large responses (glibc's malloc_trim)."""

from __future__ import annotations

import platform

from appliance.core.memory import release_free_memory


def test_release_free_memory_works_on_glibc() -> None:
    blocks = [bytes(1024 * 1024) for _ in range(32)]   # 32 MiB through the heap
    del blocks
    expected = platform.libc_ver()[0] == "glibc"
    assert release_free_memory() is expected
