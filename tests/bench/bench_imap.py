"""IMAP on a 10,000-message mailbox: the Mailstead engine beside Dovecot, same Maildir copies.

    python tests/bench/bench_imap.py [--messages 10000] [--rounds 5] [--idle 1000]
        [--only mailstead|dovecot] [--keep] [--event-loop uvloop|asyncio]

Both servers get identical copies of one generated Maildir (LF line ends, Dovecot's
`,S=,W=` names, 70 % seen) and run side by side. Each side is first warmed (SELECT and
FETCH 1:* once, untimed: Dovecot builds its index then, we build ours), then each operation
runs `--rounds` times on each server in turn (one right after the other, the first one
first in every other round, so load that comes and goes on a shared machine hits both alike)
and the median is printed, over a raw socket (the time from sending the command until the
tagged reply is in: server time plus loopback), as the server's own CPU time for it (the
`server CPU` rows: every thread of the server's process tree, from /proc schedstat, read
before the command and once the server has gone quiet after it, so work left for later
counts for its command) and through imaplib (what a Python client sees; each command but
STORE `IMAPLIB_REPEAT` times a round, the sides taking turns):

- SELECT INBOX; FETCH 1:* (FLAGS UID RFC822.SIZE); UID SEARCH HEADER Subject <needle>;
  FETCH of 100 whole messages (BODY.PEEK[] of every 100th); STORE +FLAGS / -FLAGS (\\Flagged)
  on 1:1000 (alternating, so every round changes 1,000 messages; its server CPU once more
  with the work it leaves for the next syncs, `syncs_left`); over the raw socket also
  UID FETCH of one whole message (what mbsync sends per message) and NOOP: a command's
  fixed cost (these two 25 times in a row per round, the round's figure their median),
  and both again 40 at a time in one write (pipelined, as mbsync keeps several in flight),
  per command;
- whether both answer FETCH 1:* and the FETCH of 100 whole messages with the same octets
  (then a client that parses them spends the same on either);
- a full `mbsync` (isync) pull of the mailbox into an empty local Maildir;
- RSS with `--idle` connections logged in, INBOX selected, and idle: the engine's process
  tree against Dovecot's (master, login and imap processes).

Needs root (Dovecot's mail user), Debian's dovecot-imapd and isync (installed with apt if
missing). See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

import psutil  # type: ignore[import-untyped]
from bench.measure import tree_memory

from harness.debian import ensure_package
from harness.engine import EngineProcess
from peers.dovecot import DovecotInstance, chown_tree

USER = "bench@example.test"
PASSWORD = "correct horse battery"          # what EngineProcess.add_account sets
NEEDLE = "needle-report"
WORDS = ("quarterly", "invoice", "meeting", "lunch", "project", "update", "release",
         "server", "backup", "holiday", "draft", "budget", "review", "minutes", "plan")


# -- the mailbox -----------------------------------------------------------------------------

def make_message(index: int, rng: random.Random) -> bytes:
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1.7e9 + index * 60))
    if index % 100 == 7:
        subject += f" {NEEDLE}"
    lines = [f"From: Sender {index % 97} <sender{index % 97}@example.org>",
             f"To: Bench <{USER}>",
             f"Subject: {subject}",
             f"Date: {date}",
             f"Message-ID: <{index}.bench@example.org>",
             "MIME-Version: 1.0"]
    paragraph = " ".join(rng.choice(WORDS) for _ in range(12))
    body_lines = rng.randint(20, 200)
    if index % 10 == 0:      # one in ten has an attachment
        lines += ['Content-Type: multipart/mixed; boundary="b1"', "", "--b1",
                  "Content-Type: text/plain; charset=us-ascii", ""]
        lines += [paragraph] * body_lines
        lines += ["--b1", "Content-Type: application/octet-stream; name=data.bin",
                  "Content-Transfer-Encoding: base64",
                  "Content-Disposition: attachment; filename=data.bin", ""]
        lines += ["QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2"] * 60
        lines += ["--b1--"]
    else:
        lines += ["Content-Type: text/plain; charset=us-ascii", ""]
        lines += [paragraph] * body_lines
    return ("\n".join(lines) + "\n").encode("ascii")


def make_maildir(root: Path, count: int) -> None:
    """`count` messages in `root/cur`, as a Maildir tool would leave them."""
    rng = random.Random(42)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    base = 1_700_000_000
    for index in range(count):
        data = make_message(index, rng)
        flags = "S" if rng.random() < 0.7 else ""
        crlf_size = len(data) + data.count(b"\n")
        name = f"{base + index}.M{index}P1.bench,S={len(data)},W={crlf_size}:2,{flags}"
        path = root / "cur" / name
        path.write_bytes(data)
        os.utime(path, (base + index, base + index))


# -- clients ---------------------------------------------------------------------------------

class RawImap:
    """A minimal IMAP client on a plain socket that times one command to its tagged reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.reader = self.sock.makefile("rb", buffering=1 << 20)
        self.counter = 0
        self.reader.readline()

    def command(self, text: str, keep: list[bytes] | None = None) -> tuple[float, bytes]:
        """Send `text`; return (seconds until the tagged reply, that reply line). `keep`
        gets every octet of the answer before the tagged line (untagged lines, literals)."""
        self.counter += 1
        tag = f"r{self.counter}".encode()
        started = time.perf_counter()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            while line.endswith(b"}\r\n"):           # a literal: skip its octets
                size = int(line[line.rindex(b"{") + 1:-3].rstrip(b"+"))
                literal = self.reader.read(size)
                if keep is not None:
                    keep += (line, literal)
                line = self.reader.readline()
            if line.startswith(tag + b" "):
                elapsed = time.perf_counter() - started
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r}: {line!r}")
                return elapsed, line
            if keep is not None:
                keep.append(line)

    def pipelined(self, texts: list[str]) -> float:
        """Send all of `texts` at once (one write, as a client keeping several commands
        in flight does); seconds until the last tagged reply is in."""
        tags = []
        data = b""
        for text in texts:
            self.counter += 1
            tags.append(f"r{self.counter}".encode())
            data += tags[-1] + b" " + text.encode() + b"\r\n"
        started = time.perf_counter()
        self.sock.sendall(data)
        for tag in tags:
            while True:
                line = self.reader.readline()
                if not line:
                    raise ConnectionError("server closed the connection")
                while line.endswith(b"}\r\n"):
                    size = int(line[line.rindex(b"{") + 1:-3].rstrip(b"+"))
                    self.reader.read(size)
                    line = self.reader.readline()
                if line.startswith(tag + b" "):
                    if not line.startswith(tag + b" OK"):
                        raise RuntimeError(f"{texts[0]!r}...: {line!r}")
                    break
        return time.perf_counter() - started

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.command("LOGOUT")
        self.sock.close()


@dataclass
class Side:
    name: str
    port: int
    pids: Callable[[], list[int]]
    results: dict[str, list[float]] = field(default_factory=dict)
    rss_idle: int = 0
    pss_idle: int = 0
    # The untagged answer to each command of `ANSWERS_COMPARED`, as this side sent it.
    answers: dict[str, bytes] = field(default_factory=dict)

    def record(self, key: str, seconds: float) -> None:
        self.results.setdefault(key, []).append(seconds)


def hundred(messages: int) -> str:
    """A sequence set of 100 messages spread over the mailbox (every 100th of 10,000)."""
    step = max(1, messages // 100)
    return ",".join(str(n) for n in range(step, messages + 1, step)[:100])


def operations(messages: int) -> dict[str, str]:
    return {
        "SELECT": "SELECT INBOX",
        "FETCH 1:* (FLAGS UID RFC822.SIZE)": "FETCH 1:* (FLAGS UID RFC822.SIZE)",
        "UID SEARCH HEADER Subject": f'UID SEARCH HEADER Subject "{NEEDLE}"',
        "FETCH 100 whole messages": f"FETCH {hundred(messages)} BODY.PEEK[]",
        # One message, as mbsync asks for each: the fixed cost of a command.
        "UID FETCH 1 whole message": f"UID FETCH {max(1, messages // 2)} BODY.PEEK[]",
        "NOOP": "NOOP",
    }


# Commands that take well under a millisecond run this many times in a row in each round
# (the round's figure is their median): one sample of 0.1-0.3 ms per round is mostly the
# scheduler's noise on a shared machine.
REPEAT = {"UID FETCH 1 whole message": 25, "NOOP": 25}
# Through imaplib each command but STORE (which alternates by round) runs this many times
# per round, the two sides taking turns, the round's figure the median: where the client's
# parsing sets the pace and both answers are the same octets, one sample per round is
# mostly the host's noise (imaplib FETCH 1:*, ratios of 7-40 rounds within one morning:
# 0.88 to 1.16).
IMAPLIB_REPEAT = 5
# What mbsync sends when it downloads: several one-message FETCHes in flight (here 40 sent
# in one write, different messages each round); per command.
PIPELINED = 40


STORE_KEY = "STORE 1:1000 ±FLAGS (\\Flagged)"
# Seconds after a STORE by which Dovecot lists cur/ again at the next sync (`syncs_left`):
# cur/'s mtime in whole seconds, then MAILDIR_SYNC_SECS (1) must have passed.
DIRTY_SECONDS = 2.1
# Commands whose untagged answers are compared octet for octet between the two sides (in the
# report): where a client's parsing sets the pace, identical answers cost it the same.
ANSWERS_COMPARED = ("FETCH 1:* (FLAGS UID RFC822.SIZE)", "FETCH 100 whole messages")


def server_cpu(side: Side) -> float:
    """Seconds of CPU the server's whole process tree has run so far (every thread's
    `/proc/<pid>/task/<tid>/schedstat`, whose first field is ns on the CPU): read before and
    after a command, the server's own time for it, without the client's parsing or the
    scheduler's wait that wall time includes. Dovecot's tree counts all its processes
    (master, login, auth, the imap process of the connection), and those that have ended
    (the root's reaped children: an mbsync run's own imap process), in clock ticks."""
    total = 0
    reaped = 0.0
    for root in side.pids():
        try:
            procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
            times = procs[0].cpu_times()
        except psutil.NoSuchProcess:
            continue
        reaped += times.children_user + times.children_system
        for proc in procs:
            for stat in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int(stat.read_text().split()[0])
    return total / 1e9 + reaped


def settled_cpu(side: Side, quiet: float = 0.1, limit: float = 3.0,
                at_least: float = 0.7) -> float:
    """`server_cpu` once the server has gone quiet (less than 0.3 ms of CPU in `quiet`
    seconds, and not before `at_least` seconds): work a command leaves for later -- our
    STORE's file renames, made after its reply, and the heap trim half a second after a
    big response (`core.memory.TRIM_QUIET`) -- counts for that command, not for the next
    one measured."""
    time.sleep(at_least)
    last = server_cpu(side)
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        time.sleep(quiet)
        now = server_cpu(side)
        if now - last < 0.0003:
            return now
        last = now
    return last


def syncs_left(side: Side, client: RawImap, since: float) -> float:
    """Server CPU a command (answered at `since`, `time.perf_counter`) leaves for the syncs
    after it: two NOOPs, each followed by `settled_cpu`'s wait, the second one
    `DIRTY_SECONDS` after the command, less two NOOPs' own cost (this round's "server CPU
    NOOP"). Dovecot renames STORE's files itself, but it cannot tell its own renames from
    another tool's within the second of cur/'s new mtime: it keeps that mtime as
    `dirty_cur_time` and lists cur/ again (10,000 names) at the first sync more than
    MAILDIR_SYNC_SECS (1 s) later (maildir-sync.c). Without this, that share of its STORE
    lands on a later row (its pipelined NOOPs), while ours -- the renames after the reply,
    `settled_cpu` -- is on STORE's."""
    noop = side.results["server CPU NOOP"][-1]
    before = server_cpu(side)
    client.command("NOOP")
    settled_cpu(side)
    time.sleep(max(0.0, since + DIRTY_SECONDS - time.perf_counter()))
    client.command("NOOP")
    return settled_cpu(side) - before - 2 * noop


def in_turn(sides: list[Side], round_: int) -> list[Side]:
    """The sides in the order they run in `round_`: each operation runs on one server
    right after the other, first one first, then the other (load that comes and goes on
    a shared machine then hits both alike, not whichever side happened to run then)."""
    return sides if round_ % 2 == 0 else sides[::-1]


def run_raw(sides: list[Side], rounds: int, messages: int) -> None:
    clients = {side.name: RawImap(side.port) for side in sides}
    for client in clients.values():
        client.command(f'LOGIN "{USER}" "{PASSWORD}"')
        client.command("SELECT INBOX")                    # warm: index built here
        client.command("FETCH 1:* (FLAGS UID RFC822.SIZE)")
        client.command("FETCH 1:* (ENVELOPE)")
        client.command(f'UID SEARCH HEADER Subject "{NEEDLE}"')   # both cache headers
    for side in sides:
        for key in ANSWERS_COMPARED:
            kept: list[bytes] = []
            clients[side.name].command(operations(messages)[key], kept)
            side.answers[key] = b"".join(kept)
    top = min(1000, messages)
    for round_ in range(rounds):
        sign = "+" if round_ % 2 == 0 else "-"
        texts = {**operations(messages), STORE_KEY: f"STORE 1:{top} {sign}FLAGS (\\Flagged)"}
        for key, text in texts.items():
            for side in in_turn(sides, round_):
                client = clients[side.name]
                repeat = REPEAT.get(key, 1)
                cpu_before, sent_at = server_cpu(side), time.perf_counter()
                walls = [client.command(text)[0] for _ in range(repeat)]
                cpu = (settled_cpu(side) - cpu_before) / repeat
                side.record(f"server CPU {key}", cpu)
                side.record(f"raw {key}", statistics.median(walls))
                if key == STORE_KEY:
                    left = syncs_left(side, client, sent_at + sum(walls))
                    side.record(f"server CPU {key}, the syncs it leaves included", cpu + left)
        for key, shape in (("40 UID FETCH 1 whole message pipelined, per command",
                            "UID FETCH {} (BODY.PEEK[])"),
                           ("40 NOOP pipelined, per command", "NOOP")):
            uids = range(1 + round_ * PIPELINED, 1 + (round_ + 1) * PIPELINED)
            batch = [shape.format(1 + (uid * 97) % messages) for uid in uids]
            for side in in_turn(sides, round_):
                cpu_before = server_cpu(side)
                wall = clients[side.name].pipelined(batch)
                side.record(f"server CPU {key}",
                            (settled_cpu(side) - cpu_before) / PIPELINED)
                side.record(f"raw {key}", wall / PIPELINED)
    for client in clients.values():
        if rounds % 2:
            client.command(f"STORE 1:{top} -FLAGS.SILENT (\\Flagged)")
        client.close()


def run_imaplib(sides: list[Side], rounds: int, messages: int) -> None:
    clients = {side.name: imaplib.IMAP4("127.0.0.1", side.port) for side in sides}
    for client in clients.values():
        client.login(USER, PASSWORD)
    top = min(1000, messages)
    # Each call gets the round: STORE alternates +FLAGS and -FLAGS as over the raw socket.
    calls: dict[str, Callable[[imaplib.IMAP4, int], tuple[str, object]]] = {
        "SELECT": lambda c, _: c.select("INBOX"),
        "FETCH 1:* (FLAGS UID RFC822.SIZE)":
            lambda c, _: c.fetch("1:*", "(FLAGS UID RFC822.SIZE)"),
        "UID SEARCH HEADER Subject": lambda c, _: c.uid("SEARCH", "HEADER", "Subject",
                                                        f'"{NEEDLE}"'),
        "FETCH 100 whole messages": lambda c, _: c.fetch(hundred(messages), "(BODY.PEEK[])"),
        STORE_KEY:
            lambda c, r: c.store(f"1:{top}", "+FLAGS" if r % 2 == 0 else "-FLAGS",
                                 "(\\Flagged)")}
    for round_ in range(rounds):
        for key, call in calls.items():
            walls: dict[str, list[float]] = {side.name: [] for side in sides}
            for turn in range(1 if key == STORE_KEY else IMAPLIB_REPEAT):
                for side in in_turn(sides, round_ + turn):
                    started = time.perf_counter()
                    status, _data = call(clients[side.name], round_)
                    walls[side.name].append(time.perf_counter() - started)
                    if status != "OK":
                        raise RuntimeError(f"{side.name} {key}: {status}")
            for side in sides:
                side.record(f"imaplib {key}", statistics.median(walls[side.name]))
    for client in clients.values():
        if rounds % 2:
            client.store(f"1:{top}", "-FLAGS.SILENT", "(\\Flagged)")
        client.logout()


def run_mbsync(sides: list[Side], workdir: Path, rounds: int) -> None:
    for round_ in range(rounds):
        for side in in_turn(sides, round_):
            local = workdir / f"mbsync-{side.name}-{round_}"
            shutil.rmtree(local, ignore_errors=True)
            local.mkdir(parents=True)
            config = local / "mbsyncrc"
            config.write_text(
                f"IMAPAccount bench\nHost 127.0.0.1\nPort {side.port}\nUser {USER}\n"
                f"Pass \"{PASSWORD}\"\nSSLType None\nAuthMechs LOGIN\n\n"
                "IMAPStore far\nAccount bench\n\n"
                f"MaildirStore near\nPath {local}/mail/\nInbox {local}/mail/INBOX\n\n"
                "Channel inbox\nFar :far:INBOX\nNear :near:INBOX\nSync Pull\nCreate Near\n"
                f"SyncState {local}/state/\n")
            (local / "state").mkdir()
            (local / "mail").mkdir()
            started, cpu_before = time.perf_counter(), server_cpu(side)
            client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(["mbsync", "-c", str(config), "-q", "inbox"], check=False,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"mbsync against {side.name} failed: {done.stderr.strip()}")
            side.record("mbsync full pull", time.perf_counter() - started)
            side.record("server CPU mbsync full pull", server_cpu(side) - cpu_before)
            client = resource.getrusage(resource.RUSAGE_CHILDREN)
            side.record("mbsync's own CPU", client.ru_utime + client.ru_stime
                        - client_before.ru_utime - client_before.ru_stime)
            shutil.rmtree(local, ignore_errors=True)


def measure_idle(side: Side, count: int) -> None:
    """RSS with `count` clients logged in, INBOX selected, doing nothing."""
    clients: list[RawImap] = []
    try:
        for _ in range(count):
            client = RawImap(side.port)
            client.command(f'LOGIN "{USER}" "{PASSWORD}"')
            client.command("SELECT INBOX")
            clients.append(client)
        time.sleep(1.0)
        side.rss_idle, side.pss_idle = tree_memory(side.pids())
    finally:
        for client in clients:
            client.sock.close()


# -- the two servers -------------------------------------------------------------------------

@contextmanager
def mailstead_side(workdir: Path, source: Path, event_loop: str = "uvloop") -> Iterator[Side]:
    engine = EngineProcess(workdir / "engine", log__level="info", engine__event_loop=event_loop,
                           limits__max_connections=5000,
                           limits__max_connections_per_ip=5000, imap__max_connections=5000,
                           imap__max_connections_per_ip=5000,
                           imap__max_connections_per_account=5000)
    engine.add_domain("example.test")
    maildir = engine.add_account(USER, PASSWORD)
    shutil.rmtree(maildir)
    shutil.copytree(source, maildir)
    engine.start()
    try:
        yield Side("Mailstead", engine.imap_port, lambda: [engine.proc.pid] if engine.proc else [])
    finally:
        engine.stop()


@contextmanager
def dovecot_side(workdir: Path, source: Path, fsync: str = "optimized") -> Iterator[Side]:
    maildir = workdir / "dovecot-mail"
    shutil.copytree(source, maildir)
    chown_tree(maildir)
    (workdir / "dovecot").mkdir()
    dovecot = DovecotInstance(workdir / "dovecot", settings={
        "default_process_limit": "3000", "default_client_limit": "6000",
        "mail_fsync": fsync, "mail_max_userip_connections": "5000"})
    dovecot.add_user(USER, PASSWORD, maildir)
    dovecot.start()
    try:
        yield Side("Dovecot", dovecot.imap_port,
                   lambda: [dovecot.proc.pid] if dovecot.proc else [])
    finally:
        dovecot.stop()


def ensure_tools() -> None:
    ensure_package("mbsync", "isync")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def report(sides: list[Side], args: argparse.Namespace) -> str:
    keys = list(dict.fromkeys(k for side in sides for k in side.results))
    names = [s.name for s in sides]
    lines = [f"{args.messages} messages, median of {args.rounds} rounds (ms; ratio = "
             "ours/theirs, below 1 is faster)",
             f"{'operation':48}" + "".join(f"{n:>12}" for n in names)
             + ("       ratio" if len(sides) == 2 else "")]
    for key in keys:
        values = [statistics.median(s.results[key]) * 1000 if key in s.results else None
                  for s in sides]
        row = f"{key:48}" + "".join(_ms(v) for v in values)
        if len(values) == 2 and values[0] and values[1]:
            row += f"{values[0] / values[1]:12.2f}"
        lines.append(row)
    if len(sides) == 2:
        for key in ANSWERS_COMPARED:
            ours, theirs = (side.answers[key] for side in sides)
            verdict = ("identical" if ours == theirs
                       else f"differ from octet {_first_difference(ours, theirs)}")
            lines.append(f"untagged answer to {key}: {verdict} "
                         f"({len(ours):,} / {len(theirs):,} octets)")
    lines.append(f"{'RSS with ' + str(args.idle) + ' idle connections (MB)':48}"
                 + "".join(f"{s.rss_idle / 1e6:12.0f}" for s in sides))
    lines.append(f"{'PSS with ' + str(args.idle) + ' idle connections (MB)':48}"
                 + "".join(f"{s.pss_idle / 1e6:12.0f}" for s in sides))
    return "\n".join(lines)


def _first_difference(ours: bytes, theirs: bytes) -> int:
    """The offset of the first octet where two answers differ (or where the shorter ends)."""
    return next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                min(len(ours), len(theirs)))


def _ms(value: float | None) -> str:
    """A median in ms for the table: three decimals below 1 ms (a NOOP's server CPU is
    tens of microseconds)."""
    if value is None:
        return f"{'-':>12}"
    return f"{value:12.3f}" if value < 1 else f"{value:12.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--only", choices=("mailstead", "dovecot"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the engine's `engine.event_loop`")
    parser.add_argument("--dovecot-fsync", choices=("optimized", "always"), default="optimized",
                        help="Dovecot's mail_fsync: its default, or `always` (every change "
                             "fsync'ed before OK, the guarantee Mailstead always gives)")
    args = parser.parse_args()
    ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-bench-imap-"))
    os.chmod(workdir, 0o755)
    try:
        source = workdir / "source"
        make_maildir(source, args.messages)
        sides: list[Side] = []
        with ExitStack() as stack:
            if args.only != "dovecot":
                sides.append(stack.enter_context(mailstead_side(workdir, source,
                                                                 args.event_loop)))
            if args.only != "mailstead":
                sides.append(stack.enter_context(dovecot_side(workdir, source,
                                                              args.dovecot_fsync)))
            run_raw(sides, args.rounds, args.messages)
            run_imaplib(sides, args.rounds, args.messages)
            run_mbsync(sides, workdir, max(1, args.rounds // 2))
            print("timings done", flush=True)
            for side in sides:
                if args.idle:
                    measure_idle(side, args.idle)
                print(f"{side.name} done", flush=True)
        print(report(sides, args))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
