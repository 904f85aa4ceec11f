"""The `mailstead` command line: argument parsing and dispatch to one module per area."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from appliance.cli import (
    config_cmds,
    console_cmds,
    dav_cmds,
    directory_cmds,
    dkim_cmds,
    dns_cmds,
    firewall_cmds,
    monitor_cmds,
    queue_cmds,
    release_cmds,
    report_cmds,
    run_cmds,
    spam_cmds,
    ssh_cmds,
    tls_cmds,
    update_cmds,
)
from appliance.cli.context import CliError
from appliance.core.addresses import AddressError
from appliance.dkim.keys import DkimKeyError
from appliance.settings import SettingsError
from appliance.storage.directory import DirectoryError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailstead", description="Mailstead mail appliance: engine and administration.")
    parser.add_argument("--config", metavar="FILE",
                        help="settings file (default: ./var/mailstead.toml in a checkout, "
                             "else /etc/mailstead/mailstead.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_cmds.register(commands)
    config_cmds.register(commands)
    directory_cmds.register(commands)
    queue_cmds.register(commands)
    dkim_cmds.register(commands)
    dns_cmds.register(commands)
    report_cmds.register(commands)
    spam_cmds.register(commands)
    console_cmds.register(commands)
    dav_cmds.register(commands)
    monitor_cmds.register(commands)
    tls_cmds.register(commands)
    firewall_cmds.register(commands)
    ssh_cmds.register(commands)
    update_cmds.register(commands)
    release_cmds.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    os.umask(0o077)   # mail, keys and the database are private to the service user
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except (CliError, SettingsError, DirectoryError, AddressError, DkimKeyError,
            ValueError) as exc:
        print(f"mailstead: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
