"""What the benchmarks share: memory of a server's process tree and the ours/theirs rate
table (not a benchmark itself: pytest and the bench runner ignore it)."""

from __future__ import annotations

import statistics

import psutil  # type: ignore[import-untyped]


def tree_memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) summed over the process trees of `pids`. RSS counts pages shared between
    processes (libraries, forked workers) once per process; PSS divides them fairly, which
    is what compares a process-per-connection server with an event loop."""
    rss = pss = 0
    for pid in pids:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss, pss


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def rate(messages: int, seconds: list[float]) -> float:
    """Messages per second of the median run."""
    return messages / statistics.median(seconds)


def rate_rows(messages: int, rows: list[tuple[str, list[float], list[float]]]) -> list[str]:
    """The table of median rates, Mailstead beside Postfix, with the ratio."""
    lines = [f"{'':<12} {'Mailstead':>10} {'Postfix':>10} {'ours/Postfix':>13}"]
    for label, mine, other in rows:
        a, b = rate(messages, mine), rate(messages, other)
        lines.append(f"{label:<12} {a:>10.0f} {b:>10.0f} {a / b:>13.2f}")
    return lines
