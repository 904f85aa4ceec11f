"""`engine.pin_workers`: which CPU each worker process runs on."""

from __future__ import annotations

from appliance.workers import worker_cpu


def test_workers_take_the_allowed_cpus_in_order_round_robin() -> None:
    allowed = (3, 1, 5)                     # any order, any numbers (cpusets, offline CPUs)
    assert [worker_cpu(slot, allowed) for slot in range(5)] == [1, 3, 5, 1, 3]


def test_one_cpu_takes_every_worker() -> None:
    assert {worker_cpu(slot, (0,)) for slot in range(4)} == {0}
