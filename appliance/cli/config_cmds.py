"""`mailstead config show|reference`: the effective settings, and the schema as Markdown."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli import context
from appliance.settings import reference_table, render_toml


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="inspect the settings")
    sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the effective settings (secrets masked)")
    show.set_defaults(handler=show_config)
    reference = sub.add_parser(
        "reference", help="print every setting with its default as a Markdown table")
    reference.set_defaults(handler=show_reference)


def show_config(args: argparse.Namespace) -> int:
    current = context.settings(args)
    source = current.source if current.source is not None else "built-in defaults"
    print(f"# effective settings (file: {source}; data_dir: {current.data_dir})")
    print(render_toml(current.redacted()), end="")
    return 0


def show_reference(args: argparse.Namespace) -> int:
    """Print the schema's reference table; it reads no settings file and no environment."""
    print(reference_table())
    return 0
