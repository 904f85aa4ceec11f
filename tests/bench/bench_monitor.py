"""The hardware monitor's overhead: CPU (share of one core) and memory of a running
`mailstead monitor` over a settable time.

    python tests/bench/bench_monitor.py [--seconds 120] [--interval 30] [--mdstat FILE]

Starts the real daemon as its systemd unit does (`python -m appliance.hardware`) on a
temporary data directory with one domain and its postmaster account (so alert mail is
really delivered), polls at `--interval` seconds (default 30, ten times more often than the default
`monitor.poll_interval` of 300: a worst case), and samples the process every second:
CPU seconds of the daemon and of the tools it waited for (smartctl, mdadm) over the wall
time, and RSS/PSS. `--mdstat` feeds a saved /proc/mdstat (e.g. a degraded array from
tests/fixtures/hardware/mdstat/) so that the RAID path and the alert mail run too.
Targets (issue 7): under 1 % of one core and under 40 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

from appliance.auth.passwords import Passwords
from appliance.settings import render_toml
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import create_maildir
from harness.engine import FAST_ARGON2


def prepare(root: Path, interval: int) -> Path:
    config = root / "mailstead.toml"
    config.write_text(render_toml({
        "server.hostname": "mx.bench.test", "paths.data_dir": ".", "log.level": "info",
        "monitor.poll_interval": interval, "hooks.image_dir": "", **FAST_ARGON2}))
    directory = SqliteDirectory(open_database(root))
    directory.add_domain("bench.test")
    account = directory.add_account("postmaster@bench.test",
                                    Passwords(time_cost=1, memory_kib=8192,
                                              parallelism=1).hash("x" * 12))
    create_maildir(root / account.maildir)
    return config


def measure(pid: int, seconds: float) -> dict[str, float]:
    proc = psutil.Process(pid)
    start_cpu = _cpu(proc)
    start = time.monotonic()
    rss_max = pss_max = 0
    while time.monotonic() - start < seconds:
        info = proc.memory_full_info()
        rss_max = max(rss_max, info.rss)
        pss_max = max(pss_max, getattr(info, "pss", info.rss))
        time.sleep(1.0)
    wall = time.monotonic() - start
    info = proc.memory_full_info()
    return {"wall": wall, "cpu_percent": 100 * (_cpu(proc) - start_cpu) / wall,
            "rss_max": rss_max, "pss_max": pss_max, "rss_end": info.rss}


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--mdstat", type=Path, default=Path("/proc/mdstat"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as temp:
        root = Path(temp)
        config = prepare(root, args.interval)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
        log = (root / "monitor.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "appliance.hardware", "--config", str(config),
             "--mdstat", str(args.mdstat)], stdout=log, stderr=log, env=env)
        try:
            time.sleep(3.0)          # imports and the first poll are start-up, not overhead
            if daemon.poll() is not None:
                print((root / "monitor.log").read_text(), file=sys.stderr)
                return 1
            figures = measure(daemon.pid, args.seconds)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        polls = (root / "monitor.log").read_text().count('"monitor.poll"')
        mails = len(list((root / "mail").rglob("new/*")))
    print(f"monitor over {figures['wall']:.0f} s, poll every {args.interval} s "
          f"({polls} polls, {mails} alert mails):")
    print(f"  CPU  {figures['cpu_percent']:.3f} % of one core (daemon + smartctl/mdadm)")
    print(f"  RSS  max {figures['rss_max'] / 2**20:.1f} MiB, at end "
          f"{figures['rss_end'] / 2**20:.1f} MiB; PSS max {figures['pss_max'] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
