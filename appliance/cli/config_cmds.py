"""`mailstead config show|set|unset|reference`: the effective settings and where each came
from, the values stored in mailstead.db (the same store as the console's settings page),
and the schema as Markdown."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from appliance import settings_store
from appliance.cli import context
from appliance.cli.context import CliError
from appliance.settings import ENV_PREFIX, Settings, SettingsError, reference_table, render_toml
from appliance.storage.db import open_database

APPLIES = ("the engine applies it at its next start: `mailstead engine restart` restarts it "
           "gracefully now; the console applies it at once")


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="inspect and change the settings")
    sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the effective settings (secrets masked), "
                                       "each marked with where it came from")
    show.set_defaults(handler=show_config)
    put = sub.add_parser("set", help="store a console-editable setting in mailstead.db")
    put.add_argument("name", help="section.key, e.g. limits.max_message_size")
    put.add_argument("value", help="the value as text (true/false for switches)")
    put.set_defaults(handler=set_config)
    unset = sub.add_parser("unset", help="delete a setting's value from mailstead.db "
                                         "(back to mailstead.toml's or the default)")
    unset.add_argument("name", help="section.key")
    unset.set_defaults(handler=unset_config)
    reference = sub.add_parser(
        "reference", help="print every setting with its default as a Markdown table")
    reference.set_defaults(handler=show_reference)


def show_config(args: argparse.Namespace) -> int:
    found = context.effective(args)
    current = found.settings
    source = current.source if current.source is not None else "built-in defaults"
    print(f"# effective settings (file: {source}; data_dir: {current.data_dir})")
    print("# a comment names where a value came from: file, database or environment; "
          "others are defaults")
    for item in found.ignored:
        print(f"# ignored in mailstead.db: {item.reason}")
    notes = {name: origin for name in current.values
             if (origin := current.origin(name)) != "default"}
    print(render_toml(current.redacted(), notes), end="")
    return 0


def set_config(args: argparse.Namespace) -> int:
    current = context.settings(args)
    conn = _database(current)
    try:
        value = settings_store.store(conn, args.name, args.value.strip())
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    finally:
        conn.close()
    setting = settings_store.editable_setting(args.name)
    shown = "********" if setting.secret else settings_store.to_text(setting, value)
    print(f"stored {args.name} = {shown} in mailstead.db ({APPLIES})")
    _warn_if_environment(current, args.name)
    return 0


def unset_config(args: argparse.Namespace) -> int:
    current = context.settings(args)
    conn = _database(current)
    try:
        removed = settings_store.remove(conn, args.name)
    finally:
        conn.close()
    if not removed:
        raise CliError(f"mailstead.db holds no value of {args.name}")
    print(f"removed {args.name} from mailstead.db ({APPLIES})")
    _warn_if_environment(current, args.name)
    return 0


def _database(current: Settings) -> sqlite3.Connection:
    if not current.data_dir.is_dir():
        raise CliError(f"data directory {current.data_dir} does not exist: run "
                       "`./build.sh run` once (dev) or `mailstead run` (appliance)")
    return open_database(current.data_dir)


def _warn_if_environment(current: Settings, name: str) -> None:
    if current.origin(name) == "environment":
        variable = ENV_PREFIX + name.replace(".", "__").upper()
        print(f"note: ${variable} is set and wins over mailstead.db")


def show_reference(args: argparse.Namespace) -> int:
    """Print the schema's reference table; it reads no settings file and no environment."""
    print(reference_table())
    return 0
