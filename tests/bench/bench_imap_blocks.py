"""Server CPU per IMAP command in alternating blocks: this tree's engine, optionally the engine
of another checkout (`--against DIR`, e.g. a `git worktree` of HEAD, to see what a change
does), and Dovecot, on copies of one generated Maildir.

    python tests/bench/bench_imap_blocks.py [--messages 10000] [--blocks 8]
        [--only NOOP,UID FETCH,...] [--against /tmp/wt-head] [--no-dovecot]

`bench_imap.py` times each operation once per round; on this shared VM one sample of a
command that takes 0.1-3 ms moves by 2x with the host's load. Here each operation runs in
blocks (400 small commands, 10-20 big ones), the servers' blocks interleaved and rotated, and
each block's CPU is read from every thread of the server's process tree
(`bench_imap.server_cpu`, /proc schedstat); the table shows the median per command, the
spread of the blocks, and the median of the per-block ratios (blocks next to each other saw
the same load). Needs root, Dovecot and isync as `bench_imap.py` does. See
tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

from bench.bench_imap import (
    PASSWORD,
    USER,
    RawImap,
    Side,
    dovecot_side,
    ensure_tools,
    hundred,
    mailstead_side,
    make_maildir,
    server_cpu,
)


def operations(messages: int, per: int) -> dict[str, tuple[Callable[[int], str], int]]:
    """name: (the command text for the i-th run, commands per block)."""
    spread = hundred(messages)
    return {
        "NOOP": (lambda i: "NOOP", per),
        "UID FETCH n (BODY.PEEK[])": (
            lambda i: f"UID FETCH {1 + (i * 37) % messages} (BODY.PEEK[])", per),
        "FETCH 1:* (FLAGS UID RFC822.SIZE)": (
            lambda i: "FETCH 1:* (FLAGS UID RFC822.SIZE)", 10),
        "FETCH 100 whole messages": (lambda i: f"FETCH {spread} BODY.PEEK[]", 20),
        "STORE 1:1000 ±FLAGS": (
            lambda i: f"STORE 1:{min(1000, messages)} {'+-'[i % 2]}FLAGS (\\Flagged)", 10),
    }


@contextmanager
def engine_from(tree: Path, workdir: Path, source: Path, name: str) -> Iterator[Side]:
    """The engine of the checkout at `tree` (started from there: `python -m appliance`
    imports the package of its working directory)."""
    here = os.getcwd()
    workdir.mkdir()
    os.chdir(tree)
    try:
        context = mailstead_side(workdir, source)
        side = context.__enter__()
    finally:
        os.chdir(here)
    side.name = name
    try:
        yield side
    finally:
        context.__exit__(None, None, None)


def measure(sides: list[Side], ops: dict[str, tuple[Callable[[int], str], int]],
            blocks: int) -> dict[tuple[str, str], list[float]]:
    clients = {}
    for side in sides:
        client = RawImap(side.port)
        client.command(f'LOGIN "{USER}" "{PASSWORD}"')
        client.command("SELECT INBOX")
        client.command("FETCH 1:* (FLAGS UID RFC822.SIZE)")
        clients[side.name] = client
    cpu: dict[tuple[str, str], list[float]] = {}
    for name, (text, count) in ops.items():
        for side in sides:                              # warm, untimed
            for i in range(min(count, 50)):
                clients[side.name].command(text(i))
        for block in range(blocks):
            turn = block % len(sides)
            for side in sides[turn:] + sides[:turn]:
                client, before = clients[side.name], server_cpu(side)
                for i in range(count):
                    client.command(text(i + block * count))
                cpu.setdefault((name, side.name), []).append(
                    (server_cpu(side) - before) / count)
    for client in clients.values():
        client.close()
    return cpu


def report(sides: list[Side], ops: list[str], cpu: dict[tuple[str, str], list[float]]) -> str:
    first = sides[0].name
    lines = []
    for name in ops:
        lines.append(name)
        for side in sides:
            values = [v * 1e6 for v in cpu[(name, side.name)]]
            lines.append(f"    {side.name:12} {statistics.median(values):10.1f} us CPU per "
                         f"command (blocks {min(values):.0f}-{max(values):.0f})")
        for side in sides[1:]:
            ratios = [a / b for a, b in zip(cpu[(name, first)], cpu[(name, side.name)],
                                            strict=True)]
            lines.append(f"    {first}/{side.name}: median of the block ratios "
                         f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-"
                         f"{max(ratios):.2f})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--per", type=int, default=400, help="small commands per block")
    parser.add_argument("--only", help="comma-separated parts of operation names")
    parser.add_argument("--against", type=Path, help="another checkout's tree to compare")
    parser.add_argument("--no-dovecot", action="store_true")
    args = parser.parse_args()
    ensure_tools()
    ops = operations(args.messages, args.per)
    if args.only:
        wanted = args.only.split(",")
        ops = {k: v for k, v in ops.items() if any(w in k for w in wanted)}
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-bench-blocks-"))
    os.chmod(workdir, 0o755)
    try:
        source = workdir / "source"
        make_maildir(source, args.messages)
        with ExitStack() as stack:
            here = Path(__file__).resolve().parents[2]
            sides = [stack.enter_context(engine_from(here, workdir / "this", source, "this"))]
            if args.against:
                sides.append(stack.enter_context(
                    engine_from(args.against.resolve(), workdir / "against", source,
                                "against")))
            if not args.no_dovecot:
                sides.append(stack.enter_context(dovecot_side(workdir, source)))
            started = time.perf_counter()
            cpu = measure(sides, ops, args.blocks)
        print(report(sides, list(ops), cpu))
        print(f"({time.perf_counter() - started:.0f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
