"""Queue ids: 13 characters of our alphabet, time-ordered, unique across worker processes."""

from __future__ import annotations

import os

from appliance.core.ids import _ALPHABET, new_queue_id


def test_ids_are_short_unique_and_time_ordered() -> None:
    ids = [new_queue_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 13 and set(i) <= set(_ALPHABET) for i in ids)
    stamps = [i[:8] for i in ids]
    assert stamps == sorted(stamps)


def test_a_forked_worker_draws_other_ids_than_its_parent() -> None:
    """Worker processes are forked: each must not repeat its parent's random draws."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, "".join(new_queue_id()[8:] for _ in range(20)).encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 1000).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent = "".join(new_queue_id()[8:] for _ in range(20))
    assert child != parent
