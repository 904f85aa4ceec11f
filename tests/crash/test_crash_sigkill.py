"""SIGKILL of the engine under load: every 250 is on disk, whole, in every recipient's Maildir.

Ten client threads send 300 messages (1-64 KB, some to several accounts) while the engine is
killed twice with SIGKILL at a random number of acknowledged messages and restarted on the
same port and data directory. Clients retry until every message got its 250. A message may
be stored twice only if one of its attempts sent the whole DATA and then lost the reply: the
engine may have stored it and died before answering (RFC 5321 section 6.1 allows duplicates,
never losses). Everything else must be there exactly once; tmp/ may keep only files of a
killed process.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import random
import re
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.crash import (
    AckLedger,
    killed_if_left_running,
    left_by_killed,
    run_under_kills,
    seeded,
)
from harness.engine import EngineProcess

DOMAIN = "crash.test"
ACCOUNTS = [f"user{n}@{DOMAIN}" for n in range(5)]
SENDER = "loader@client.test"
TOTAL = 300
THREADS = 10
DEADLINE_SECONDS = 50.0
MIN_SIZE, MAX_SIZE = 1024, 64 * 1024

_ID_HEADER = re.compile(rb"^X-Crash-Id: (\S+)$", re.MULTILINE)
_HASH_HEADER = re.compile(rb"^X-Body-SHA256: ([0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class Spec:
    """One message to send: its id, recipients, wire bytes (CRLF) and body hash (LF form)."""

    uid: str
    recipients: tuple[str, ...]
    wire: bytes
    digest: str


def _body(rng: random.Random, size: int) -> bytes:
    """LF-terminated base64 lines, some starting with '.', and some lone '.' lines."""
    text = base64.b64encode(rng.randbytes(size)).decode()
    lines = [text[i:i + 76] for i in range(0, len(text), 76)]
    for index in range(0, len(lines), 9):
        lines[index] = "." + lines[index]
    lines.insert(rng.randrange(len(lines) + 1), ".")
    return ("\n".join(lines) + "\n").encode()


def make_spec(rng: random.Random, number: int) -> Spec:
    uid = f"crash-{number:03d}-{rng.getrandbits(32):08x}"
    recipients = tuple(rng.sample(ACCOUNTS, rng.choice((1, 1, 1, 2, 3))))
    body = _body(rng, rng.randint(MIN_SIZE, MAX_SIZE) * 3 // 4)
    digest = hashlib.sha256(body).hexdigest()
    head = (f"From: <{SENDER}>\nTo: {', '.join(recipients)}\nSubject: crash {number}\n"
            f"Message-ID: <{uid}@client.test>\nX-Crash-Id: {uid}\nX-Body-SHA256: {digest}\n\n")
    wire = (head.encode() + body).replace(b"\n", b"\r\n")
    return Spec(uid, recipients, wire, digest)


@dataclass
class Ledger(AckLedger):
    """What the clients saw, shared by all threads (guarded by `cond`); acked by uid."""

    ambiguous: Counter[str] = field(default_factory=Counter)
    temporary_replies: int = 0

    def lost(self, uid: str, ambiguous: bool) -> None:
        with self.cond:
            self.lost_connections += 1
            if ambiguous:
                self.ambiguous[uid] += 1

    def temporary(self) -> None:
        with self.cond:
            self.temporary_replies += 1


class ReplyLostError(Exception):
    """The connection died; `ambiguous` when the whole DATA had been sent first."""

    def __init__(self, ambiguous: bool) -> None:
        super().__init__("connection lost" + (" after DATA" if ambiguous else ""))
        self.ambiguous = ambiguous


class RejectedError(Exception):
    """A 5xx: the test's own mistake or an engine bug, never retried."""


def _expect(reply: tuple[int, bytes], wanted: int, what: str) -> bool:
    """True for the wanted code, False for a 4xx (retry), RejectedError for anything else."""
    code, text = reply
    if code == wanted:
        return True
    if 400 <= code < 500:
        return False
    raise RejectedError(f"{what}: {code} {text!r}")


def send_once(client: smtplib.SMTP, spec: Spec) -> bool:
    """One transaction; True on 250 after DATA, False on a 4xx (the engine kept nothing)."""
    sent = False
    try:
        steps = [(client.mail(SENDER), 250, "MAIL")]
        steps += [(client.rcpt(r), 250, f"RCPT {r}") for r in spec.recipients]
        if not all(_expect(*step) for step in steps):
            client.rset()
            return False
        if not _expect(client.docmd("DATA"), 354, "DATA"):
            client.rset()
            return False
        client.send(re.sub(rb"(?m)^\.", b"..", spec.wire) + b".\r\n")
        sent = True
        return _expect(client.getreply(), 250, "end of DATA")
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        raise ReplyLostError(ambiguous=sent) from exc


def _connect(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.ehlo("client.test")
    return client


def _deliver(spec: Spec, port: int, ledger: Ledger, state: dict[str, smtplib.SMTP]) -> None:
    """Send `spec` until it gets a 250, reconnecting after every lost connection."""
    rng = random.Random(spec.uid)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            client = state.get("client")
            if client is None:
                client = state["client"] = _connect(port)
            if send_once(client, spec):
                ledger.ack(spec.uid)
                return
            ledger.temporary()
        except ReplyLostError as lost:
            state.pop("client").close()
            ledger.lost(spec.uid, lost.ambiguous)
        except (OSError, smtplib.SMTPException):
            state.pop("client", None)    # refused while the engine restarts
        time.sleep(rng.uniform(0.02, 0.2))
    raise TimeoutError(f"{spec.uid} got no 250 within {DEADLINE_SECONDS}s")


def client_thread(port: int, jobs: queue.Queue[Spec], ledger: Ledger) -> None:
    state: dict[str, smtplib.SMTP] = {}
    try:
        while True:
            try:
                spec = jobs.get_nowait()
            except queue.Empty:
                break
            _deliver(spec, port, ledger, state)
        if "client" in state:
            state["client"].quit()
    except Exception as exc:
        ledger.error(f"{type(exc).__name__}: {exc}")


@dataclass
class Found:
    """What the Maildirs hold: copies per (uid, account), and every problem seen."""

    copies: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def check_file(path: Path, account: str, specs: dict[str, Spec], found: Found) -> None:
    data = path.read_bytes()
    head, sep, body = data.partition(b"\n\n")
    uid_match, hash_match = _ID_HEADER.search(head), _HASH_HEADER.search(head)
    if not sep or uid_match is None or hash_match is None:
        found.problems.append(f"{path}: unparsable ({len(data)} bytes)")
        return
    uid = uid_match.group(1).decode()
    if hashlib.sha256(body).hexdigest() != hash_match.group(1).decode():
        found.problems.append(f"{path}: body hash mismatch ({uid}, partial or corrupt)")
    if f",S={len(data)}," not in path.name.split(":")[0] + ",":
        found.problems.append(f"{path}: size in name differs from {len(data)} bytes")
    if uid not in specs or account not in specs[uid].recipients:
        found.problems.append(f"{path}: {uid} does not belong in {account}")
    found.copies[(uid, account)] += 1


def scan_maildirs(engine: EngineProcess, specs: dict[str, Spec], killed: list[int]) -> Found:
    found = Found()
    for account in ACCOUNTS:
        root = engine.maildir(account)
        for path in [*(root / "new").iterdir(), *(root / "cur").iterdir()]:
            check_file(path, account, specs, found)
        for path in (root / "tmp").iterdir():
            if not left_by_killed(path.name, killed):
                found.problems.append(f"{path}: tmp/ file not left by a killed process")
    return found


def copy_problems(specs: dict[str, Spec], ledger: Ledger, found: Found) -> list[str]:
    """Each acked message once per recipient; a second copy only after a lost 250."""
    problems = []
    for spec in specs.values():
        allowed = 1 + ledger.ambiguous[spec.uid]
        for account in spec.recipients:
            copies = found.copies[(spec.uid, account)]
            if not 1 <= copies <= allowed:
                problems.append(f"{spec.uid} in {account}: {copies} copies, "
                                f"allowed 1..{allowed}")
    return problems


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_twice_under_load_loses_nothing(tmp_path: Path) -> None:
    rng = seeded("crash test")
    specs = {s.uid: s for s in (make_spec(rng, n) for n in range(TOTAL))}
    first = rng.randint(50, 110)
    points = [first, rng.randint(first + 40, 200)]
    engine = EngineProcess(tmp_path / "data", log__level="info")
    engine.start()
    engine.add_domain(DOMAIN)
    for account in ACCOUNTS:
        engine.add_account(account)
    jobs: queue.Queue[Spec] = queue.Queue()
    for spec in specs.values():
        jobs.put(spec)
    ledger = Ledger()
    threads = [threading.Thread(target=client_thread, args=(engine.smtp_port, jobs, ledger),
                                name=f"client-{n}", daemon=True) for n in range(THREADS)]
    started = time.monotonic()
    with killed_if_left_running(engine):
        killed = run_under_kills(engine, threads, ledger, points, rng, DEADLINE_SECONDS)
    elapsed = time.monotonic() - started

    assert ledger.errors == []
    assert set(ledger.acked) == set(specs), "some messages never got a 250"
    assert ledger.lost_connections >= THREADS, "the kills did not interrupt the clients"
    found = scan_maildirs(engine, specs, killed)
    assert found.problems == []
    assert copy_problems(specs, ledger, found) == []
    duplicated = sorted({uid for (uid, _), n in found.copies.items() if n > 1})
    print(f"kills at {points} acks (pids {killed}) in {elapsed:.1f}s: "
          f"{ledger.lost_connections} lost connections, {ledger.temporary_replies} 4xx, "
          f"{sum(ledger.ambiguous.values())} attempts lost their 250 "
          f"({len(ledger.ambiguous)} messages), stored twice: {duplicated}")
    assert set(duplicated) <= set(ledger.ambiguous)
