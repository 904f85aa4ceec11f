"""SMTP accept and delivery throughput: the Mailstead engine beside a private Postfix.

    python tests/bench/bench_smtp_accept.py [--messages 2000] [--concurrency 20] [--size 4096]
        [--workers 0]

Both servers run at once, each with its own temp directory on the same file system, and each
is driven in turn by the same load generator, Postfix's own `smtp-source`. Accepted/s counts
until the last 250 came back; delivered/s until every message is a file in the Maildir.
See tests/bench/README.md for what each side does per message.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

from bench.measure import rate_rows, tree_rss

from harness.engine import EngineProcess, free_port
from peers.postfix import PostfixInstance, ensure_postfix_installed

SMTP_SOURCE = Path("/usr/sbin/smtp-source")
DOMAIN = "bench.test"
RECIPIENT = f"rcpt@{DOMAIN}"
SENDER = "loader@client.test"
POLL_SECONDS = 0.01
DELIVERY_TIMEOUT = 300.0


@dataclass(frozen=True)
class Load:
    """One smtp-source run: how many messages, sessions in parallel, payload bytes."""

    messages: int
    concurrency: int
    size: int
    reuse: bool


@dataclass(frozen=True)
class Server:
    """A server under test: its SMTP port and how to count the messages it delivered."""

    name: str
    port: int
    delivered: Callable[[], int]
    rss: Callable[[], int] = lambda: 0   # bytes resident in all its processes


@dataclass(frozen=True)
class Result:
    accepted_s: float   # seconds until smtp-source had every 250
    delivered_s: float  # seconds until every message was a file in the Maildir
    rss: int            # resident bytes of the server's processes right after the run


def smtp_source(port: int, load: Load, count: int) -> None:
    """Send `count` messages with smtp-source; raise if any transaction failed."""
    argv = [str(SMTP_SOURCE), "-l", str(load.size), "-m", str(count),
            "-s", str(load.concurrency), "-f", SENDER, "-t", RECIPIENT, "-M", "client.test"]
    argv += ["-d"] if load.reuse else []
    proc = subprocess.run([*argv, f"127.0.0.1:{port}"], capture_output=True, text=True,
                          timeout=DELIVERY_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"smtp-source against port {port} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}")


def count_files(maildir: Path) -> int:
    """Messages in a Maildir's new/ and cur/ (0 before the first delivery created it)."""
    total = 0
    for sub in ("new", "cur"):
        with contextlib.suppress(FileNotFoundError):
            total += len(os.listdir(maildir / sub))
    return total


def wait_for_count(server: Server, target: int) -> None:
    """Poll until `server` holds `target` messages."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while server.delivered() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.name}: {server.delivered()}/{target} delivered")
        time.sleep(POLL_SECONDS)


def measure(server: Server, load: Load) -> Result:
    """One timed run: smtp-source, then poll the Maildir until every message is there.

    Polling starts only once smtp-source is done: delivery can finish no earlier than
    acceptance, and a poller running meanwhile would steal CPU from the server under test.
    """
    target = server.delivered() + load.messages
    started = time.monotonic()
    smtp_source(server.port, load, load.messages)
    accepted = time.monotonic() - started
    rss = server.rss()
    wait_for_count(server, target)
    return Result(accepted, time.monotonic() - started, rss)


def warm_up(server: Server, load: Load, count: int) -> None:
    """Start every process and cache the first run pays for, then let delivery settle."""
    target = server.delivered() + count
    smtp_source(server.port, load, count)
    wait_for_count(server, target)


@contextmanager
def engine_server(workdir: Path, load: Load, workers: int) -> Iterator[Server]:
    engine = EngineProcess(workdir, log__level="info", engine__workers=workers,
                           limits__max_connections_per_ip=max(100, 4 * load.concurrency))
    engine.start()
    try:
        engine.add_domain(DOMAIN)
        maildir = engine.add_account(RECIPIENT)
        assert engine.proc is not None
        pid = engine.proc.pid
        yield Server("Mailstead", engine.smtp_port, lambda: count_files(maildir),
                     lambda: tree_rss(pid))
    finally:
        engine.stop()


@contextmanager
def postfix_server(workdir: Path) -> Iterator[Server]:
    postfix = PostfixInstance(workdir, free_port(), [DOMAIN], [RECIPIENT])
    postfix.start()
    try:
        maildir = postfix.maildir_of(RECIPIENT)
        yield Server("Postfix", postfix.port, lambda: count_files(maildir))
    finally:
        postfix.stop()


def report(load: Load, results: dict[str, list[Result]]) -> str:
    ours, theirs = results["Mailstead"], results["Postfix"]
    rows = [("accepted/s", [r.accepted_s for r in ours], [r.accepted_s for r in theirs]),
            ("delivered/s", [r.delivered_s for r in ours], [r.delivered_s for r in theirs])]
    lines = [f"{load.messages} messages x {load.size} bytes, {load.concurrency} sessions, "
             f"{'reused' if load.reuse else 'one connection per message'}; "
             f"median of {len(ours)} rounds",
             *rate_rows(load.messages, rows)]
    lines.append(f"Mailstead RSS after each run (all processes): "
                 f"{max(r.rss for r in ours) / 2**20:.0f} MB at most")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per timed run")
    parser.add_argument("--concurrency", type=int, default=20, help="parallel SMTP sessions")
    parser.add_argument("--size", type=int, default=4096, help="payload bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per server")
    parser.add_argument("--warmup", type=int, default=200, help="untimed messages first")
    parser.add_argument("--reuse", action="store_true",
                        help="several messages per connection (smtp-source -d)")
    parser.add_argument("--workers", type=int, default=0,
                        help="engine.workers for Mailstead (0: one per CPU)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    return parser.parse_args()


def run(load: Load, rounds: int, warmup: int, workdir: Path,
        workers: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {"Mailstead": [], "Postfix": []}
    with ExitStack() as stack:
        servers = [stack.enter_context(engine_server(workdir / "engine", load, workers)),
                   stack.enter_context(postfix_server(workdir / "postfix"))]
        for server in servers:
            warm_up(server, load, warmup)
        for round_no in range(rounds):
            # alternate who goes first, so neither always inherits the other's dirty pages
            for server in servers if round_no % 2 == 0 else servers[::-1]:
                result = measure(server, load)
                results[server.name].append(result)
                print(f"round {round_no + 1} {server.name:<9} accepted in "
                      f"{result.accepted_s:6.2f}s, delivered in {result.delivered_s:6.2f}s",
                      flush=True)
    return results


def main() -> int:
    args = parse_args()
    load = Load(args.messages, args.concurrency, args.size, args.reuse)
    ensure_postfix_installed()
    if not SMTP_SOURCE.exists():
        raise SystemExit(f"{SMTP_SOURCE} is missing (it ships in Debian's postfix package)")
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-bench-"))
    try:
        results = run(load, args.rounds, args.warmup, workdir, args.workers)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(load, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
