"""The engine's garbage-collector policy: when CPython's cycle collector runs in an engine
process, so that its pauses do not land on every connection's next command.

Each engine process is one event loop serving every connection. With CPython 3.11's default
thresholds (700, 10, 10) a big command (FETCH 1:* of 10,000 messages allocates some 100,000
container objects) sets off a run of young collections and, now and then, a full one that
walks the whole heap (the folder states' 10,000 `MessageMeta`s per folder, the FETCH
fragment cache, every module): measured in the engine, 19 and 58 ms each, a stall of the
loop for every client; a NOOP right after a FETCH 1:* took 3.1 ms instead of 0.26.

The policy (`apply`, called once per engine process when its listeners are up, in
`engine.run_engine`, which every worker process runs):

- `gc.freeze()`: what start-up made (modules, settings, the listeners, caches) moves to the
  permanent generation, which no collection walks again. Nothing frozen is freed, so it is
  done once, after start-up, not after the folder states load: their objects come and go.
- larger thresholds (`THRESHOLDS`): a young collection after `GEN0` net new container
  objects instead of 700, so a FETCH 1:* sets off at most one instead of dozens, and a
  full collection comes after some 100 times as many objects as with the defaults.
  Cycles are still collected (by the same collector, only less often): what reference
  counting cannot free waits for at most about `GEN0` allocations in the youngest
  generation, and for the next full collection once it was promoted
  (tests/unit/test_gcpolicy.py creates cycles under these thresholds and sees them
  freed). Most of the engine's garbage is freed by reference counting at once and never
  waits for the collector.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

# Measured in the engine (tests/bench/README.md, "GC policy"): 50,000 made young
# collections rarer still but each took up to 30 ms (a young 10,000-entry folder dict is
# walked whole) and the engine kept 4 MB more; 10,000 kept the RSS of the defaults.
GEN0 = 10_000          # net new container objects before a young collection (default 700)
GEN1 = 10              # young collections before a middle one (default 10)
GEN2 = 100             # middle collections before a full one (default 10); CPython also
                       # waits until the objects promoted since the last full collection are
                       # a quarter of those it walked then
THRESHOLDS = (GEN0, GEN1, GEN2)


@dataclass(frozen=True)
class Applied:
    """What `apply` found, so that a caller (a test) can put it back with `undo`."""

    thresholds: tuple[int, int, int]
    frozen_before: int


_applied: Applied | None = None


def apply(thresholds: tuple[int, int, int] = THRESHOLDS) -> Applied:
    """Freeze what exists now and set `thresholds` (once per process: a second call changes
    nothing and returns what the first found)."""
    global _applied
    if _applied is None:
        previous = gc.get_threshold()
        _applied = Applied((previous[0], previous[1], previous[2]), gc.get_freeze_count())
        gc.collect()           # what start-up left as garbage is not frozen for good
        gc.freeze()
        gc.set_threshold(*thresholds)
    return _applied


def undo() -> None:
    """Put the thresholds back and unfreeze (tests that run the policy in their process)."""
    global _applied
    if _applied is not None:
        gc.set_threshold(*_applied.thresholds)
        gc.unfreeze()
        _applied = None
