"""STORE on 1,000 messages: the least a Python store with an index row per message spends on
it, beside what our engine and Dovecot spend, in one interleaved run.

    python tests/bench/bench_store_floor.py [--rounds 30]

The mailbox is `bench_imap`'s 10,000-message Maildir; each server gets a copy, and this
process a third. Each round, one after the other:

- our engine and Dovecot each answer `STORE 1:1000 +FLAGS (\\Flagged)` (`-FLAGS` in the
  next round), each over its own connection; their CPU is `bench_imap.settled_cpu`'s (the
  whole process tree, work left for after the reply included: our deferred renames). Each
  STORE is also the next sync after the one before, seconds later, so it carries what
  that one left for it (Dovecot's second listing of cur/, see `bench_imap.syncs_left`;
  our catching up on the rename job's commits);
- the floor, in this process, on the third copy: what any store that keeps flags in the
  file names and an SQLite row per message must do for that command at the least -- 1,000
  `os.rename` with a directory fd and names made beforehand (not timed), one fsync of cur/,
  and one 1,000-row UPDATE of new name, flags and MODSEQ in a real account index
  (`open_index`: WAL, synchronous=FULL) in one transaction. No untagged FETCH lines, no
  in-memory state, no crash-safety marks. Its CPU is this process's (`getrusage`).

Median and minimum per side (ms of CPU). Needs root (Dovecot's mail user) and Debian's
dovecot-imapd, as `bench_imap.py`. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, as pytest would

from bench.bench_imap import (
    PASSWORD,
    USER,
    RawImap,
    Side,
    dovecot_side,
    ensure_tools,
    in_turn,
    mailstead_side,
    make_maildir,
    server_cpu,
    settled_cpu,
)

from appliance.storage.maildir.index import open_index

STORED = 1000            # messages each STORE changes (1:1000)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Floor:
    """The bare work of one STORE on the first `STORED` files of a Maildir copy."""

    def __init__(self, maildir: Path, index_dir: Path) -> None:
        self.cur = os.open(maildir / "cur", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.names = sorted(os.listdir(maildir / "cur"))[:STORED]
        self.conn, _ = open_index(index_dir)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "INSERT INTO messages (folder_id, uid, base, subdir, filename, flags, modseq, "
            "internal_date, size) VALUES (1, ?, ?, 'cur', ?, '', 1, 0, 1000)",
            [(uid, name.partition(":")[0], name) for uid, name in enumerate(self.names, 1)])
        self.conn.execute("COMMIT")
        self.modseq = 1

    def store(self, add: bool) -> float:
        """Seconds of CPU for one +FLAGS (`add`) or -FLAGS (\\Flagged) on all `STORED`."""
        renames, rows = [], []
        for uid, old in enumerate(self.names, 1):
            base, _, letters = old.partition(":2,")
            kept = set(letters) - {"F"}
            new = f"{base}:2,{''.join(sorted(kept | {'F'} if add else kept))}"
            renames.append((old, new))
            rows.append((new, "\\Flagged" if add else "", self.modseq + 1, uid))
            self.names[uid - 1] = new
        self.modseq += 1
        started = cpu_seconds()
        for old, new in renames:
            os.rename(old, new, src_dir_fd=self.cur, dst_dir_fd=self.cur)
        os.fsync(self.cur)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("UPDATE messages SET filename = ?, flags = ?, modseq = ? "
                              "WHERE folder_id = 1 AND uid = ?", rows)
        self.conn.execute("COMMIT")
        return cpu_seconds() - started

    def close(self) -> None:
        os.close(self.cur)
        self.conn.close()


def server_store(side: Side, client: RawImap, add: bool) -> float:
    before = server_cpu(side)
    client.command(f"STORE 1:{STORED} {'+' if add else '-'}FLAGS (\\Flagged)")
    return settled_cpu(side) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-bench-store-floor-"))
    os.chmod(workdir, 0o755)
    results: dict[str, list[float]] = {"Mailstead": [], "Dovecot": [], "floor": []}
    try:
        source = workdir / "source"
        make_maildir(source, 10_000)
        shutil.copytree(source, workdir / "floor")
        (workdir / "floor-index").mkdir()
        with ExitStack() as stack:
            floor = Floor(workdir / "floor", workdir / "floor-index")
            stack.callback(floor.close)
            sides = [stack.enter_context(mailstead_side(workdir, source)),
                     stack.enter_context(dovecot_side(workdir, source))]
            clients = {side.name: RawImap(side.port) for side in sides}
            for client in clients.values():
                client.command(f'LOGIN "{USER}" "{PASSWORD}"')
                client.command("SELECT INBOX")
                client.command("FETCH 1:* (FLAGS UID RFC822.SIZE)")
            for round_ in range(args.rounds):
                add = round_ % 2 == 0
                for side in in_turn(sides, round_):
                    results[side.name].append(server_store(side, clients[side.name], add))
                results["floor"].append(floor.store(add))
            for client in clients.values():
                client.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"STORE 1:{STORED} ±FLAGS (\\Flagged) on 10,000 messages, {args.rounds} rounds, "
          "ms of CPU")
    print(f"{'':12}{'median':>10}{'min':>10}")
    for name, values in results.items():
        print(f"{name:12}{statistics.median(values) * 1000:10.1f}{min(values) * 1000:10.1f}")
    ours, theirs = (statistics.median(results[n]) for n in ("Mailstead", "Dovecot"))
    least = statistics.median(results["floor"])
    print(f"ours / Dovecot {ours / theirs:.2f}; floor / Dovecot {least / theirs:.2f}; "
          f"ours above the floor {1000 * (ours - least):.1f} ms")


if __name__ == "__main__":
    main()
