"""`mailstead config show`: the effective settings, secrets masked."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli import context
from appliance.settings import render_toml


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="inspect the settings")
    sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the effective settings (secrets masked)")
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    current = context.settings(args)
    source = current.source if current.source is not None else "built-in defaults"
    print(f"# effective settings (file: {source}; data_dir: {current.data_dir})")
    print(render_toml(current.redacted()), end="")
    return 0
