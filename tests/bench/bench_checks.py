"""The inbound message checks: cost per message, and SMTP throughput with every check on.

    python tests/bench/bench_checks.py [--messages 300] [--size 51200] [--smtp-messages 2000]
        [--concurrency 20] [--rounds 3] [--skip-smtp]

Real parts only: a private Knot DNS serves the sender's SPF, DKIM and DMARC records, a DNS
blocklist zone and a URI blocklist zone; a private clamd (the tests' signature database)
scans; greylisting and the spam classifier keep their state in a temporary data directory.

1. **Pipeline cost**: every inbound check the settings build (`build_checks`: clamav, auth =
   SPF + DKIM + ARC + DMARC, dnsbl, greylist, spam), run in this process on one 50 KB
   DKIM-signed message (text, HTML and a base64 attachment, a few URLs) `--messages` times;
   median and p99 of the whole pipeline and of each check. DNS answers are cached by the
   checks where they cache (DNSBL) and by nothing else (SPF and DKIM ask Knot each time).
2. **SMTP throughput**: `bench_smtp_accept`'s load (Postfix's `smtp-source`, 4 KB messages)
   against the engine with every check on, beside a plain Postfix; the ratio compared with
   the SMTP issue's figures says what the checks cost on the wire. Postfix runs no checks
   at all (no policy daemon, milter or content filter): the harshest comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import smtplib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

from bench import bench_smtp_accept as smtp_bench
from bench.measure import tree_rss

from appliance.checks.context import MessageContext
from appliance.checks.pipeline import MessageCheck, build_checks
from appliance.checks.result import Verdict
from appliance.dkim import keys
from appliance.dkim.records import txt_line
from appliance.dkim.signer import DkimSigner
from appliance.settings import Settings, load_settings
from harness.engine import EngineProcess
from peers.clamd import ClamdInstance
from peers.dns import KnotDns, ensure_knot_installed, zone_text
from peers.postfix import ensure_postfix_installed

SENDER_DOMAIN = "sender.test"
SENDER = f"newsletter@{SENDER_DOMAIN}"
RECIPIENT = "rcpt@bench.test"
HOSTNAME = "mx.bench.test"
CLIENT_IP = "127.0.0.1"
BLOCKLIST = "bl.bench-dns.test"
URI_BLOCKLIST = "uribl.bench-dns.test"


def zones(signing: Path) -> dict[str, str]:
    """Knot zones: the sender (SPF, DKIM keys, DMARC p=reject), smtp-source's sender domain,
    a DNS blocklist listing 127.0.0.2 (not the client) and a URI blocklist."""
    pair = keys.ensure_keys(signing, SENDER_DOMAIN).active
    dkim = [txt_line(owner, value)            # absolute owner names, split TXT strings
            for owner, value in keys.pair_records(signing, SENDER_DOMAIN, pair)]
    sender = zone_text(SENDER_DOMAIN, [
        '@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test"',
        *dkim])
    loader = zone_text("client.test", ['@ TXT "v=spf1 ip4:127.0.0.0/8 -all"'])
    blocklist = zone_text(BLOCKLIST, ["2.0.0.127 A 127.0.0.2", '2.0.0.127 TXT "listed"'])
    uri = zone_text(URI_BLOCKLIST, ["spam-site.example A 127.0.0.2"])
    return {SENDER_DOMAIN: sender, "client.test": loader, BLOCKLIST: blocklist,
            URI_BLOCKLIST: uri}


def fifty_kb_message(size: int) -> bytes:
    """A newsletter-like message of about `size` octets: text, HTML, a base64 attachment."""
    text = ("Hello reader,\n\nThis month's news: https://www.sender.test/news and "
            "https://shop.example.org/offer?id=42 and more.\n" * 40)
    html = "<html><body>" + "<p>News <a href='https://www.sender.test/a'>item</a></p>\n" * 80
    attachment_size = max(1024, size - len(text) - len(html) - 2048)
    attachment = base64.encodebytes(bytes(range(256)) * (attachment_size * 3 // 4 // 256 + 1))
    return (
        f"From: Sender News <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: Monthly news\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench-1@sender.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
        f"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--\r\n"
        "--outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode() + attachment[
        :attachment_size].replace(b"\n", b"\r\n") + b"\r\n--outer--\r\n"


def check_settings(data_dir: Path, knot: KnotDns, clamd: ClamdInstance,
                   **extra: object) -> dict[str, object]:
    """Every check on, pointed at the private DNS and clamd (as `section__key` values)."""
    return {
        "paths__data_dir": str(data_dir), "server__hostname": HOSTNAME,
        "outbound__resolver": knot.resolver_spec,
        "antivirus__enabled": True, "antivirus__clamd_socket": str(clamd.socket_path),
        "checks__authentication": True,
        "dnsbl__enabled": True, "dnsbl__ip_zones": f"{BLOCKLIST}:5",
        "dnsbl__uri_zones": f"{URI_BLOCKLIST}:4", "dnsbl__reject_zones": "",
        "greylist__enabled": True, "greylist__delay": 1,
        "spam__enabled": True, **extra}


def load(values: dict[str, object]) -> Settings:
    environ = {f"MAILSTEAD_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
               for k, v in values.items()}
    return load_settings(None, environ=environ)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def message_context(queue_id: str) -> MessageContext:
    """The envelope of the benchmark message, as the MX would build it."""
    return MessageContext(queue_id=queue_id, client_ip=CLIENT_IP, helo=HOSTNAME,
                          mail_from=SENDER, recipients=(RECIPIENT,), mailboxes=(RECIPIENT,))


async def time_pipeline(checks: Sequence[MessageCheck], message: bytes,
                        rounds: int) -> dict[str, list[float]]:
    """Milliseconds per check and in all, per message."""
    times: dict[str, list[float]] = {check.name: [] for check in checks}
    times["all"] = []
    verdicts: dict[str, set[str]] = {check.name: set() for check in checks}
    results: list[str] = []
    for n in range(rounds):
        context = message_context(f"B{n}")
        started = time.perf_counter()
        for check in checks:
            before = time.perf_counter()
            result = await check.check(message, context)
            times[check.name].append((time.perf_counter() - before) * 1000)
            verdicts[check.name].add(result.verdict.name)
            if n == rounds - 1:
                results.extend(result.auth_results)
            if result.verdict >= Verdict.TEMPFAIL:
                raise SystemExit(f"{check.name} refused the benchmark message: {result}")
        times["all"].append((time.perf_counter() - started) * 1000)
    print("verdicts: " + ", ".join(f"{k}={'/'.join(sorted(v))}" for k, v in verdicts.items()))
    print("authentication results: " + "; ".join(results))
    return times


def pipeline_cost(workdir: Path, knot: KnotDns, clamd: ClamdInstance, messages: int,
                  size: int) -> None:
    data_dir = workdir / "pipeline"
    data_dir.mkdir()
    settings = load(check_settings(data_dir, knot, clamd))
    checks = build_checks(settings)
    signed = DkimSigner(workdir / "signing", HOSTNAME).sign(SENDER, fifty_kb_message(size))
    print(f"pipeline cost: {len(signed)} octets, checks: "
          f"{', '.join(c.name for c in checks)}; {messages} messages")

    async def run() -> dict[str, list[float]]:
        # greylisting: the first message is held; its retry after the delay passes and
        # the authenticated sender is then known (the steady state measured).
        warm = await time_pipeline_tolerant(checks, signed)
        print(f"warm-up verdicts: {warm}")
        return await time_pipeline(checks, signed, messages)

    times = asyncio.run(run())
    print(f"{'check':<14} {'median ms':>10} {'p99 ms':>8}")
    for name, values in times.items():
        print(f"{name:<14} {statistics.median(values):>10.2f} {percentile(values, 0.99):>8.2f}")


async def time_pipeline_tolerant(checks: Sequence[MessageCheck], message: bytes) -> str:
    """Run the pipeline until it accepts (greylisting holds the first attempt)."""
    seen = []
    for attempt in range(5):
        context = message_context(f"W{attempt}")
        worst = Verdict.ACCEPT
        for check in checks:
            result = await check.check(message, context)
            worst = max(worst, result.verdict)
            if result.verdict >= Verdict.TEMPFAIL:
                seen.append(f"{check.name}:{result.verdict.name}")
                break
        else:
            seen.append(worst.name)
            return " -> ".join(seen)
        await asyncio.sleep(1.5)
    raise SystemExit(f"the pipeline never accepted the benchmark message: {seen}")


@contextmanager
def checked_engine(workdir: Path, knot: KnotDns, clamd: ClamdInstance,
                   load_: smtp_bench.Load, workers: int) -> Iterator[smtp_bench.Server]:
    """The engine with every check on, its greylist passed once for smtp-source's sender."""
    settings = check_settings(workdir / "data", knot, clamd)
    del settings["paths__data_dir"]            # the engine's own
    engine = EngineProcess(workdir, log__level="info", engine__workers=workers,
                           limits__max_connections_per_ip=max(100, 4 * load_.concurrency),
                           **settings)
    engine.start()
    try:
        engine.add_domain("bench.test")
        maildir = engine.add_account(RECIPIENT)
        pass_greylist(engine)
        assert engine.proc is not None
        pid = engine.proc.pid
        yield smtp_bench.Server("Mailstead", engine.smtp_port,
                                lambda: smtp_bench.count_files(maildir),
                                lambda: tree_rss(pid))
    finally:
        engine.stop()


def pass_greylist(engine: EngineProcess) -> None:
    """Send smtp-source's triplet once, wait out the delay, send again: allowlisted."""
    message = b"From: <loader@client.test>\r\nSubject: greylist\r\n\r\nhello\r\n"
    for _attempt in range(10):
        with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=30) as client:
            try:
                client.sendmail(smtp_bench.SENDER, [RECIPIENT], message)
                return
            except smtplib.SMTPDataError as exc:
                if exc.smtp_code != 451:
                    raise
        time.sleep(1.5)
    raise SystemExit("greylisting never let smtp-source's sender through")


def smtp_throughput(workdir: Path, knot: KnotDns, clamd: ClamdInstance,
                    args: argparse.Namespace) -> None:
    load_ = smtp_bench.Load(args.smtp_messages, args.concurrency, 4096, False)
    results: dict[str, list[smtp_bench.Result]] = {"Mailstead": [], "Postfix": []}
    with ExitStack() as stack:
        servers = [stack.enter_context(checked_engine(workdir / "engine", knot, clamd,
                                                      load_, args.workers)),
                   stack.enter_context(smtp_bench.postfix_server(workdir / "postfix"))]
        for server in servers:
            smtp_bench.warm_up(server, load_, args.warmup)
        for round_no in range(args.rounds):
            for server in servers if round_no % 2 == 0 else servers[::-1]:
                result = smtp_bench.measure(server, load_)
                results[server.name].append(result)
                print(f"round {round_no + 1} {server.name:<9} accepted in "
                      f"{result.accepted_s:6.2f}s, delivered in {result.delivered_s:6.2f}s",
                      flush=True)
    print("SMTP with every check on (Mailstead) beside plain Postfix:")
    print(smtp_bench.report(load_, results))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="pipeline runs")
    parser.add_argument("--size", type=int, default=50 * 1024, help="message octets")
    parser.add_argument("--smtp-messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--skip-smtp", action="store_true", help="only the pipeline cost")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    ensure_knot_installed()
    if not args.skip_smtp:
        ensure_postfix_installed()
    with tempfile.TemporaryDirectory(prefix="bench-checks-") as temp:
        workdir = Path(temp)
        signing = workdir / "signing"
        signing.mkdir()
        with KnotDns(workdir / "dns", zones(signing)) as knot, \
                ClamdInstance(workdir / "clamd") as clamd:
            pipeline_cost(workdir, knot, clamd, args.messages, args.size)
            if not args.skip_smtp:
                smtp_throughput(workdir / "smtp", knot, clamd, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
