"""What every command needs: the settings file to use, the settings, the directory."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

import appliance
from appliance.settings import Settings
from appliance.settings_store import Effective, load_effective
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

SYSTEM_CONFIG = Path("/etc/mailstead/mailstead.toml")
DEV_CONFIG_NAME = Path("var") / "mailstead.toml"


class CliError(Exception):
    """A command cannot run; the message says why and is shown as it is."""


def checkout_root() -> Path | None:
    """The source checkout this package runs from, if it is one (dev mode)."""
    root = Path(appliance.__file__).resolve().parent.parent
    return root if (root / "build.sh").is_file() and (root / "appliance").is_dir() else None


def config_path(args: argparse.Namespace) -> Path | None:
    """--config, else $MAILSTEAD_CONFIG, else the checkout's var/, else /etc, else none."""
    if args.config:
        return Path(args.config)
    if os.environ.get("MAILSTEAD_CONFIG"):
        return Path(os.environ["MAILSTEAD_CONFIG"])
    root = checkout_root()
    if root is not None and (root / DEV_CONFIG_NAME).is_file():
        return root / DEV_CONFIG_NAME
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def effective(args: argparse.Namespace) -> Effective:
    """Defaults, the settings file, mailstead.db's values, the environment
    (settings_store.py), with the stored values that were not applied."""
    return load_effective(config_path(args))


def settings(args: argparse.Namespace) -> Settings:
    """The effective settings; a stored value that was not applied is named on stderr."""
    found = effective(args)
    for item in found.ignored:
        print(f"mailstead: warning: ignoring mailstead.db's value of {item.name}: "
              f"{item.reason}", file=sys.stderr)
    return found.settings


def open_directory(current: Settings) -> tuple[SqliteDirectory, sqlite3.Connection]:
    """Open the directory in the configured data_dir (which must exist)."""
    if not current.data_dir.is_dir():
        raise CliError(f"data directory {current.data_dir} does not exist: run "
                       "`./build.sh run` once (dev) or `mailstead run` (appliance)")
    conn = open_database(current.data_dir)
    return SqliteDirectory(conn), conn
