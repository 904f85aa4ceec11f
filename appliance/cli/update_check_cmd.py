"""`mailstead update check [--download]`: ask the release repository (update.url) for a
newer release, verified with TUF (appliance/update/trust.py). update_cmds.py owns the
`update` command and adds this action with `add_check`.

Exit status: 0 an offer or up to date, 1 refused (the reason is printed), 2 bad use.
The answer is kept in state.json's `last_check` for the console (update_cmds.record_check).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from appliance.cli import context


def add_check(actions: Any) -> None:
    """Add `check` to the `update` command's subparsers."""
    check = actions.add_parser("check", help="ask the update server for a newer release "
                               "(verified; nothing is installed)")
    check.add_argument("--channel", choices=("stable", "beta"),
                       help="default: update.channel")
    check.add_argument("--current", help="the version to compare with (default: running)")
    check.add_argument("--download", action="store_true",
                       help="also download the offered bundle into <data_dir>/update/"
                            "downloads and print its path")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    from appliance.cli.update_cmds import record_check, running_version
    from appliance.core import log
    from appliance.update.state import state_dir
    from appliance.update.trust import UpdateClient, UpdateRefused, config_from_settings
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    channel = args.channel or current.get_str("update.channel")
    version = args.current or running_version()
    client = UpdateClient(config_from_settings(current))
    try:
        offer = client.check(channel, version)
        path = (client.download(offer, state_dir(current) / "downloads")
                if offer is not None and args.download else None)
    except UpdateRefused as exc:
        record_check(current, channel, f"refused: {exc.reason}", exc.message)
        _show(args, {"result": "refused", "reason": exc.reason, "message": exc.message},
              f"update refused ({exc.reason}): {exc.message}")
        return 1
    record_check(current, channel, "up to date" if offer is None
                 else f"offered {offer.version}")
    if offer is None:
        _show(args, {"result": "up-to-date", "channel": channel, "current": version},
              f"up to date: {version} is the newest release on {channel}")
        return 0
    data = {"result": "offer", "current": version, **asdict(offer)}
    text = (f"update available: {offer.version} on {channel} (running {version}; "
            f"{offer.length} bytes, data schema {offer.data_schema})")
    if path is not None:
        data["path"] = str(path)
        text += f"\ndownloaded and verified: {path}"
    _show(args, data, text)
    return 0


def _show(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(text, file=sys.stderr if data["result"] == "refused" else sys.stdout)
