"""Submission -> queue -> delivery to a Postfix peer: the Mailstead engine beside Postfix as MSA.

    python tests/bench/bench_submission_delivery.py [--messages 600] [--concurrency 20]
        [--size 4096] [--rounds 3] [--warmup 100] [--per-domain 20] [--keep]

One world for both (tests/peers/mail_world.py): Knot DNS and a peer Postfix on 127.0.0.2
with STARTTLS, storing into Maildirs. The same load (N messages over `--concurrency`
sessions, each session STARTTLS + AUTH PLAIN once, then many messages) goes in turn to
our submission port and to a Postfix configured as a submission server (Cyrus SASL, TLS
required) that relays to the same peer. submitted/s counts until the last 250 came back;
delivered/s until the peer's Maildir holds every message. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

from bench.measure import rate_rows, tree_rss

from harness.debian import ensure_package
from harness.engine import EngineProcess, free_port
from peers.mail_world import PEER_IP, MailWorld, mail_world
from peers.postfix import PostfixInstance, ensure_postfix_installed

SASLPASSWD2 = Path("/usr/sbin/saslpasswd2")
DOMAIN = "example.test"
SENDER = f"loader@{DOMAIN}"
PASSWORD = "correct horse battery"          # what EngineProcess.add_account sets
RECIPIENTS = {"Mailstead": "alice@peer.test", "Postfix": "bob@peer.test"}
POLL_SECONDS = 0.01
TIMEOUT = 300.0


@dataclass(frozen=True)
class Load:
    """One run: messages in all, sessions in parallel, payload bytes per message."""

    messages: int
    concurrency: int
    size: int


@dataclass(frozen=True)
class Side:
    """A submission server under test and how to count what reached the peer for it."""

    name: str
    port: int
    recipient: str
    delivered: Callable[[], int]
    rss: Callable[[], int] = lambda: 0


@dataclass(frozen=True)
class Result:
    submitted_s: float   # seconds until every session had its last 250
    delivered_s: float   # seconds until the peer's Maildir held every message
    rss: int


def count_files(maildir: Path) -> int:
    total = 0
    for sub in ("new", "cur"):
        with contextlib.suppress(FileNotFoundError):
            total += len(os.listdir(maildir / sub))
    return total


def message(recipient: str, number: int, size: int) -> bytes:
    head = (f"From: <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: bench {number}\r\n"
            f"Message-ID: <bench.{number}.{time.time_ns()}@client.test>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def tls_context() -> ssl.SSLContext:
    """The same client TLS for both sides (certificates are not what is measured)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def session(port: int, recipient: str, numbers: range, size: int) -> str | None:
    """One client session: STARTTLS, AUTH once, then every message in `numbers`; returns
    what went wrong, or None. Runs in a pool process: the load generator must not be the
    bottleneck (20 smtplib sessions in one interpreter top out near 150 messages/s)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                          timeout=60) as client:
            client.starttls(context=tls_context())
            client.login(SENDER, PASSWORD)
            for number in numbers:
                refused = client.sendmail(SENDER, [recipient],
                                          message(recipient, number, size))
                if refused:
                    return f"refused: {refused}"
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def submit(pool: Pool, side: Side, load: Load, count: int) -> None:
    """`count` messages over `load.concurrency` sessions at once; raise if any failed."""
    share = -(-count // load.concurrency)
    jobs = [(side.port, side.recipient, range(start, min(start + share, count)), load.size)
            for start in range(0, count, share)]
    errors = [e for e in pool.starmap(session, jobs) if e is not None]
    if errors:
        raise RuntimeError(f"{side.name}: {len(errors)} session(s) failed, first: {errors[0]}")


def wait_for_count(side: Side, target: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while side.delivered() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{side.name}: {side.delivered()}/{target} delivered")
        time.sleep(POLL_SECONDS)


def measure(pool: Pool, side: Side, load: Load) -> Result:
    """One timed run; the peer's Maildir is polled only once submission has finished."""
    target = side.delivered() + load.messages
    started = time.monotonic()
    submit(pool, side, load, load.messages)
    submitted = time.monotonic() - started
    rss = side.rss()
    wait_for_count(side, target)
    return Result(submitted, time.monotonic() - started, rss)


@contextmanager
def engine_side(world: MailWorld, workdir: Path, load: Load, per_domain: int) -> Iterator[Side]:
    engine = EngineProcess(workdir, **world.engine_settings(
        log__level="info", limits__max_connections_per_ip=max(100, 4 * load.concurrency),
        submission__rate_limit_messages=1_000_000, queue__max_per_domain=per_domain))
    engine.start()
    try:
        engine.add_domain(DOMAIN)
        engine.add_account(SENDER, PASSWORD)
        assert engine.proc is not None
        pid = engine.proc.pid
        recipient = RECIPIENTS["Mailstead"]
        maildir = world.peer.maildir_of(recipient)
        yield Side("Mailstead", engine.submission_port, recipient,
                   lambda: count_files(maildir), lambda: tree_rss(pid))
    finally:
        engine.stop()


def ensure_saslpasswd2() -> None:
    """Debian's `sasl2-bin` brings saslpasswd2, to fill Postfix's Cyrus sasldb."""
    ensure_package(str(SASLPASSWD2), "sasl2-bin")


def sasl_config(directory: Path) -> Path:
    """A Cyrus SASL config dir for Postfix's smtpd: PLAIN/LOGIN against a sasldb with our
    sender; readable by user postfix (its smtpd reads it, no chroot).

    Debian's Postfix looks for `smtpd.conf` in `$config_directory/sasl` (its own patch;
    `cyrus_sasl_config_path` is set as well for other builds).
    """
    directory.mkdir(parents=True)
    database = directory / "sasldb2"
    (directory / "smtpd.conf").write_text(
        f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
        f"sasldb_path: {database}\n")
    local, _, realm = SENDER.partition("@")
    subprocess.run([str(SASLPASSWD2), "-f", str(database), "-c", "-p", "-u", realm, local],
                   input=PASSWORD, text=True, check=True, timeout=30)
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
    return directory


@contextmanager
def postfix_side(world: MailWorld, workdir: Path) -> Iterator[Side]:
    """Postfix as the MSA: STARTTLS required, AUTH through Cyrus, relay to the peer."""
    cert, key = world.ca.issue(["localhost", "127.0.0.1"], workdir / "certs", "msa")
    settings = {
        "smtpd_tls_cert_file": str(cert), "smtpd_tls_key_file": str(key),
        "smtpd_tls_security_level": "encrypt", "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "cyrus",
        "smtpd_sasl_path": "smtpd",
        "cyrus_sasl_config_path": str(sasl_config(workdir / "config" / "sasl")),
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
        "relayhost": f"[{PEER_IP}]:{world.smtp_port}",
        "default_transport": "smtp", "relay_transport": "smtp",
        "smtp_tls_security_level": "may", "smtp_tls_CAfile": str(world.ca_file),
    }
    msa = PostfixInstance(workdir, free_port(), [], [], main_cf=settings)
    msa.start()
    try:
        recipient = RECIPIENTS["Postfix"]
        maildir = world.peer.maildir_of(recipient)
        yield Side("Postfix", msa.port, recipient, lambda: count_files(maildir))
    finally:
        msa.stop()


def report(load: Load, results: dict[str, list[Result]], per_domain: int) -> str:
    ours, theirs = results["Mailstead"], results["Postfix"]
    rows = [("submitted/s", [r.submitted_s for r in ours], [r.submitted_s for r in theirs]),
            ("delivered/s", [r.delivered_s for r in ours], [r.delivered_s for r in theirs])]
    lines = [f"{load.messages} messages x {load.size} bytes, {load.concurrency} sessions "
             f"(STARTTLS + AUTH, reused), delivered to the peer over STARTTLS; "
             f"queue.max_per_domain = {per_domain}; median of {len(ours)} rounds",
             *rate_rows(load.messages, rows)]
    lines.append(f"Mailstead RSS after each submission run: "
                 f"{max(r.rss for r in ours) / 2**20:.0f} MB at most")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=600, help="messages per timed run")
    parser.add_argument("--concurrency", type=int, default=20, help="parallel sessions")
    parser.add_argument("--size", type=int, default=4096, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per side")
    parser.add_argument("--warmup", type=int, default=100, help="untimed messages first")
    parser.add_argument("--per-domain", type=int, default=20,
                        help="queue.max_per_domain for Mailstead (its default is 20, as Postfix's)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    return parser.parse_args()


def run(load: Load, rounds: int, warmup: int, workdir: Path,
        per_domain: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {"Mailstead": [], "Postfix": []}
    with ExitStack() as stack:
        # one client process per session, started (forked) before anything is timed
        pool = stack.enter_context(Pool(load.concurrency))
        world = stack.enter_context(mail_world("bench-sub"))
        sides = [stack.enter_context(engine_side(world, workdir / "engine", load, per_domain)),
                 stack.enter_context(postfix_side(world, workdir / "msa"))]
        for side in sides:
            target = side.delivered() + warmup
            submit(pool, side, load, warmup)
            wait_for_count(side, target)
        for round_no in range(rounds):
            for side in sides if round_no % 2 == 0 else sides[::-1]:
                result = measure(pool, side, load)
                results[side.name].append(result)
                print(f"round {round_no + 1} {side.name:<9} submitted in "
                      f"{result.submitted_s:6.2f}s, delivered in {result.delivered_s:6.2f}s",
                      flush=True)
    return results


def main() -> int:
    args = parse_args()
    load = Load(args.messages, args.concurrency, args.size)
    ensure_postfix_installed()
    ensure_saslpasswd2()
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-bench-sub-"))
    try:
        results = run(load, args.rounds, args.warmup, workdir, args.per_domain)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(load, results, args.per_domain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
