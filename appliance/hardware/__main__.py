"""`python -m appliance.hardware --config FILE [--once] [--mdstat FILE]`: the monitor daemon
as mailstead-monitor.service starts it. Same as `mailstead monitor`, without importing the
whole command line (every other command's modules), so the daemon stays under 40 MB."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.core import log
from appliance.hardware.collect import Collector
from appliance.hardware.monitor import Monitor, exit_status, serve
from appliance.hardware.readers.mdstat import MDSTAT
from appliance.settings import SettingsError
from appliance.settings_store import load_effective, log_ignored

SYSTEM_CONFIG = Path("/etc/mailstead/mailstead.toml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.hardware",
                                     description="Mailstead hardware monitor")
    parser.add_argument("--config", type=Path,
                        default=Path(os.environ.get("MAILSTEAD_CONFIG", SYSTEM_CONFIG)))
    parser.add_argument("--once", action="store_true", help="one poll, then exit")
    parser.add_argument("--mdstat", type=Path, default=MDSTAT, metavar="FILE")
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        effective = load_effective(args.config)     # mailstead.toml + the console's edits
    except SettingsError as exc:
        print(f"mailstead-monitor: {exc}", file=sys.stderr)
        return 2
    settings = effective.settings
    log.configure(settings.get_str("log.level"))
    log_ignored(effective.ignored)
    monitor = Monitor(settings, Collector(settings.data_dir, args.mdstat))
    if args.once:
        return exit_status(asyncio.run(monitor.poll()).findings)
    asyncio.run(serve(monitor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
