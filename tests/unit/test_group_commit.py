"""fsio.GroupCommit: concurrent submitters share commits; errors reach every caller."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.core.fsio import GroupCommit


def test_single_submit_commits_once() -> None:
    batches: list[list[int]] = []
    group = GroupCommit(batches.append)
    group.submit(1)
    group.submit(2)
    assert batches == [[1], [2]]


def test_concurrent_submitters_share_commits() -> None:
    batches: list[list[int]] = []

    def slow_commit(items: list[int]) -> None:
        time.sleep(0.05)
        batches.append(items)

    group = GroupCommit(slow_commit)
    start = threading.Barrier(20)

    def submit(n: int) -> None:
        start.wait()
        group.submit(n)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for b in batches for i in b) == list(range(20))
    assert len(batches) <= 3        # one leader alone, then everybody who piled up


def test_window_gathers_more() -> None:
    batches: list[list[int]] = []
    group = GroupCommit(batches.append, window=0.1)
    threads = [threading.Thread(target=group.submit, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(batches) == 1


def test_commit_error_reaches_every_caller_of_the_batch_and_next_batch_works() -> None:
    calls: list[list[int]] = []

    def commit(items: list[int]) -> None:
        calls.append(items)
        if 13 in items:
            raise OSError("disk on fire")

    group = GroupCommit(commit)
    with pytest.raises(OSError, match="disk on fire"):
        group.submit(13)
    group.submit(14)
    assert calls == [[13], [14]]
