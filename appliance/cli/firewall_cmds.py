"""`mailstead firewall apply [--dry-run]`: load `console.allowed_networks` into the
appliance firewall's LAN sets (appliance/net/firewall_lan.py). Root, on the appliance:
mailstead-firewall.service runs it at boot and whenever the console touches the trigger
file (mailstead-firewall.path)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.cli import context
from appliance.core import log


def register(commands: Any) -> None:
    firewall = commands.add_parser("firewall", help="the appliance firewall's LAN sets")
    sub = firewall.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = sub.add_parser("apply", help="load console.allowed_networks into nftables' "
                                         "lan4/lan6 sets (root)")
    apply.add_argument("--dry-run", action="store_true",
                       help="print the nft script instead of running it")
    apply.set_defaults(handler=apply_command)


def apply_command(args: argparse.Namespace) -> int:
    from appliance.net import firewall_lan

    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    allowed = current.get_str("console.allowed_networks")
    if args.dry_run:
        sys.stdout.write(firewall_lan.lan_script(firewall_lan.lan_networks(allowed)))
        return 0
    try:
        firewall_lan.apply_lan(allowed)
    except (ValueError, RuntimeError) as exc:
        print(f"mailstead firewall apply: {exc}", file=sys.stderr)
        return 1
    print("firewall LAN sets loaded from console.allowed_networks")
    return 0
