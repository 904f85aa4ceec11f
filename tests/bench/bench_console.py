"""The web console under gunicorn with 1,000 accounts: latency of its busiest admin pages.

    python tests/bench/bench_console.py [--accounts 1000] [--requests 500]
        [--concurrency 1,4] [--warmup 50] [--keep]

One data directory holds the real engine (`EngineProcess`: the dashboard asks it for the
queue over the control socket) and the console, served by real gunicorn (`mailstead console
serve`, webui/gunicorn.conf.py: one worker, 8 threads). Domain example.test gets
`--accounts` accounts, 50 aliases and its DKIM keys; its DNS records were checked once
against Knot on loopback (tests/console/dns_world.py, half of them right), so the DNS page
renders stored results as it does on a box. An admin logs in through the login form; Apache
`ab` (apache2-utils, installed with apt if missing) then fetches each page with that session
cookie: `--warmup` untimed requests, then `--requests` timed ones at each concurrency.
A run that saw any non-2xx answer or a page of another length is refused (it would be
timing a redirect to the login page or an error page). Prints median and p95 per page.
See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

import psutil  # type: ignore[import-untyped]
from console.dns_world import DOMAIN, HOST, world_values, world_zones

from appliance.auth.passwords import Passwords
from appliance.dkim import keys
from appliance.settings import load_settings, render_toml
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from harness.debian import ensure_package
from harness.engine import EngineProcess, free_port, wait_for_port
from harness.processes import stop_process
from peers.dns import KnotDns
from webui import admins, dns_store, setup_state
from webui.dns_check import domain_records

ADMIN = "admin"
ADMIN_PASSWORD = "Bench-Console-Pass-42"
PAGES = {"dashboard": "/", "accounts list": "/admin/accounts/", "DNS page": "/dns"}
TARGET_MS = 100.0


@dataclass(frozen=True)
class Timing:
    page: str
    concurrency: int
    median_ms: float
    p95_ms: float
    per_second: float
    cpu_ms: float           # the console's CPU time (user + system) per request


def prepare(engine: EngineProcess, accounts: int, knot: KnotDns) -> None:
    """Admin (wizard done), `accounts` accounts and 50 aliases, DKIM keys, one DNS check."""
    conn = open_database(engine.data_dir)
    try:
        settings = load_settings(engine.config_file, environ={})
        passwords = Passwords.from_settings(settings)
        admins.create(conn, ADMIN, passwords.hash(ADMIN_PASSWORD))
        for step in setup_state.STEPS:
            setup_state.mark_done(conn, step)
        directory = SqliteDirectory(conn)
        directory.add_domain(DOMAIN)
        shared = passwords.hash("bench account password 1")   # one hash: fast to set up
        for number in range(accounts):
            directory.add_account(f"user{number:05d}@{DOMAIN}", shared)
        for number in range(50):
            directory.add_alias(f"team{number:02d}@{DOMAIN}", f"user{number:05d}@{DOMAIN}")
        keys.ensure_keys(engine.data_dir, DOMAIN)
        knot.zones = world_zones(domain_records(settings, DOMAIN))
        knot.start()
        dns_store.check_and_save(settings, conn)
    finally:
        conn.close()


@contextmanager
def console(config: Path, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(config), "console", "serve",
             "--bind", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_port(port, 30, proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc)


def log_in(base: str) -> str:
    """Log the admin in through the form; returns the Cookie header value for ab."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/login", timeout=30) as response:
        page = response.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if token is None:
        raise RuntimeError("no CSRF token on the login page")
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "username": ADMIN,
                                   "password": ADMIN_PASSWORD, "next": ""}).encode()
    with opener.open(base + "/login", data=form, timeout=30) as response:
        landed = response.read().decode()
    if "<h1>Dashboard</h1>" not in landed:
        raise RuntimeError("the login did not reach the dashboard")
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def ab(url: str, cookie: str, requests: int, concurrency: int) -> str:
    done = subprocess.run(
        ["ab", "-q", "-n", str(requests), "-c", str(concurrency), "-C", cookie, url],
        capture_output=True, text=True, timeout=900, check=True)
    return done.stdout


def parse_ab(output: str, page: str, concurrency: int, cpu_ms: float) -> Timing:
    """Median and p95 from ab's percentile table; refuses runs with odd answers."""
    for refusal in ("Non-2xx responses", "Exceptions"):
        if refusal in output:
            raise RuntimeError(f"{page}: ab saw {refusal}:\n{output}")
    failed = re.search(r"Failed requests:\s+(\d+)", output)
    if failed is None or failed.group(1) != "0":
        raise RuntimeError(f"{page}: failed requests (errors or other page lengths):\n{output}")
    percent = dict(re.findall(r"^\s+(\d+)%\s+(\d+)", output, re.MULTILINE))
    rate = re.search(r"Requests per second:\s+([\d.]+)", output)
    if rate is None or "50" not in percent or "95" not in percent:
        raise RuntimeError(f"{page}: no percentiles in ab's output:\n{output}")
    return Timing(page, concurrency, float(percent["50"]), float(percent["95"]),
                  float(rate.group(1)), cpu_ms)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants so far."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def measure(base: str, pid: int, cookie: str, requests: int, levels: list[int],
            warmup: int) -> list[Timing]:
    timings = []
    for page, path in PAGES.items():
        if warmup:
            ab(base + path, cookie, warmup, 1)
        for level in levels:
            before = tree_cpu(pid)
            output = ab(base + path, cookie, requests, level)
            cpu_ms = (tree_cpu(pid) - before) * 1000 / requests
            timings.append(parse_ab(output, page, level, cpu_ms))
            print(f"  {page:<14} c={level}: {timings[-1].median_ms:.0f} ms median", flush=True)
    return timings


def report(timings: list[Timing], accounts: int) -> None:
    print(f"\nconsole pages, {accounts} accounts (ab, logged-in admin session)")
    print(f"{'page':<15} {'clients':>7} {'median ms':>10} {'p95 ms':>7} {'req/s':>7} "
          f"{'CPU ms/req':>10}  under {TARGET_MS:.0f} ms p95")
    for t in timings:
        verdict = "yes" if t.p95_ms < TARGET_MS else "NO"
        print(f"{t.page:<15} {t.concurrency:>7} {t.median_ms:>10.0f} {t.p95_ms:>7.0f} "
              f"{t.per_second:>7.1f} {t.cpu_ms:>10.1f}  {verdict}")


def page_sizes(base: str, cookie: str) -> None:
    for page, path in PAGES.items():
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=30) as response:
            size = len(response.read())
        print(f"  {page:<14} {size:>7} bytes", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", default="1,4",
                        help="comma-separated ab -c levels (default 1,4)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()
    ensure_package("ab", "apache2-utils")
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-bench-console-"))
    try:
        with ExitStack() as stack:
            knot = KnotDns(workdir / "knot", {})
            stack.callback(knot.stop)
            engine = EngineProcess(workdir / "data", server__hostname=HOST,
                                   log__level="info")
            world = world_values(knot.resolver_spec, f"127.0.0.1:{engine.smtp_port}")
            config = engine.config_file.read_text(encoding="utf-8")
            engine.config_file.write_text(_with_world(config, world), encoding="utf-8")
            started = time.monotonic()
            prepare(engine, args.accounts, knot)
            print(f"prepared {args.accounts} accounts in {time.monotonic() - started:.1f} s",
                  flush=True)
            stack.enter_context(engine)
            base, pid = stack.enter_context(console(engine.config_file,
                                                    workdir / "console.log"))
            cookie = log_in(base)
            page_sizes(base, cookie)
            print(f"load average before the runs: {os.getloadavg()[0]:.2f}", flush=True)
            report(measure(base, pid, cookie, args.requests, levels, args.warmup),
                   args.accounts)
            print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _with_world(config: str, world: dict[str, object]) -> str:
    """The engine's mailstead.toml with the DNS world's settings added."""
    raw = tomllib.loads(config)
    flat = {f"{section}.{key}": value for section, table in raw.items()
            for key, value in table.items()}
    return render_toml({**flat, **world})


if __name__ == "__main__":
    main()
