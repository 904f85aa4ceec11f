"""`mailstead monitor` (the hardware monitor daemon, mailstead-monitor.service) and
`mailstead health [--json]` (the disks, RAID, space and sensors now, with active alerts).

`health` exits 0 when all is well, 1 with warnings, 2 with a critical problem, so scripts
and the console can act on it without parsing. The systemd unit starts the daemon as
`python -m appliance.hardware` (the same code without the rest of the command line, which
would double its memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from appliance.cli import context
from appliance.core import log
from appliance.hardware.readers.mdstat import MDSTAT
from appliance.storage.db import open_database


def register(commands: Any) -> None:
    monitor = commands.add_parser("monitor", help="watch disks, SMART, RAID, space and "
                                  "temperatures; mail the admin about problems")
    monitor.add_argument("--once", action="store_true", help="one poll, then exit")
    _mdstat_option(monitor)
    monitor.set_defaults(handler=monitor_command)
    health = commands.add_parser("health", help="the hardware state now (exit 0 ok, "
                                 "1 warning, 2 critical)")
    health.add_argument("--json", action="store_true", help="print JSON")
    _mdstat_option(health)
    health.set_defaults(handler=health_command)


def _mdstat_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mdstat", type=Path, default=MDSTAT, metavar="FILE",
                        help="read md RAID state from FILE instead of /proc/mdstat "
                             "(a saved copy, for diagnosis and tests)")


def monitor_command(args: argparse.Namespace) -> int:
    from appliance.hardware.collect import Collector
    from appliance.hardware.monitor import Monitor, exit_status, serve
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    if not current.data_dir.is_dir():
        raise context.CliError(f"data directory {current.data_dir} does not exist")
    monitor = Monitor(current, Collector(current.data_dir, args.mdstat))
    if args.once:
        return exit_status(asyncio.run(monitor.poll()).findings)
    asyncio.run(serve(monitor))
    return 0


def health_command(args: argparse.Namespace) -> int:
    from appliance.hardware.alerts import AlertBook
    from appliance.hardware.collect import Collector
    from appliance.hardware.monitor import exit_status
    from appliance.hardware.rules import evaluate
    from appliance.hardware.rules.base import Thresholds
    from appliance.hardware.status import state, text
    current = context.settings(args)
    limits = Thresholds.from_settings(current)
    snapshot = Collector(current.data_dir, args.mdstat).collect()
    findings = evaluate(snapshot, limits)
    alerts = []
    if (current.data_dir / "mailstead.db").is_file():
        alerts = AlertBook(open_database(current.data_dir)).all("active")
    view = state(snapshot, limits, findings, alerts)
    print(json.dumps(view, indent=2) if args.json else text(view))
    return exit_status(findings)
