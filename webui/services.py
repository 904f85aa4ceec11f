"""The console's shared services: its settings, the per-request database and directory.

Every blueprint reaches mailstead.db through `db()` (opened on first use in a request,
closed at teardown) and the accounts through `directory()`; nothing is opened at import time.
`settings()` is the file's settings with mailstead.db's values laid over them
(settings_store.py), re-read when the database changed: an edit shows on the next request.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g

from appliance.cli import context
from appliance.settings import Settings, load_settings
from appliance.settings_store import Effective, LiveSettings, load_effective
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

SETTINGS_KEY = "MAILSTEAD_SETTINGS"     # the file's (or a test's) settings, without the db's
LIVE_EXTENSION = "mailstead_live_settings"


def _config_path() -> Path | None:
    return context.config_path(argparse.Namespace(config=None))


def load_console_settings() -> Settings:
    """The settings the way the CLI finds them ($MAILSTEAD_CONFIG, ./var/, /etc), with
    mailstead.db's values (gunicorn.conf.py; requests use `settings()`)."""
    return load_effective(_config_path()).settings


def init_app(app: Flask) -> None:
    """Give `app` its settings (tests pass a Settings object) and close the db at teardown."""
    if not isinstance(app.config.get(SETTINGS_KEY), Settings):
        app.config[SETTINGS_KEY] = load_settings(_config_path())
    app.extensions[LIVE_EXTENSION] = LiveSettings(app.config[SETTINGS_KEY])
    app.teardown_appcontext(_close_db)


def effective() -> Effective:
    """This request's settings and the stored values that were not applied (one look at
    mailstead.db per request; see LiveSettings)."""
    found: Effective | None = g.get("mailstead_settings")
    if found is None:
        found = _live().current()
        g.mailstead_settings = found
    return found


def _live() -> LiveSettings:
    """The app's LiveSettings, made anew if a test replaced the app's base settings."""
    live = current_app.extensions.get(LIVE_EXTENSION)
    base = current_app.config[SETTINGS_KEY]
    assert isinstance(base, Settings)
    if not isinstance(live, LiveSettings) or live.base is not base:
        live = LiveSettings(base)
        current_app.extensions[LIVE_EXTENSION] = live
    return live


def settings() -> Settings:
    """The effective settings of this console: the file's, then mailstead.db's values."""
    return effective().settings


def settings_changed() -> None:
    """Forget this request's settings after storing one (the next `settings()` re-reads)."""
    g.pop("mailstead_settings", None)


def option(name: str) -> Any:
    """A console setting (`console.*`, `listen.console_*`) from the schema; a test may
    override one through app.config[name]."""
    if name in current_app.config:
        return current_app.config[name]
    return option_from(settings(), name)


def option_from(current: Settings, name: str) -> Any:
    """`option()` without an app (gunicorn.conf.py, the CLI)."""
    return current[name]


def db() -> sqlite3.Connection:
    """This request's connection to mailstead.db (schema migrated)."""
    conn: sqlite3.Connection | None = g.get("mailstead_db")
    if conn is None:
        conn = open_database(settings().data_dir)
        g.mailstead_db = conn
    return conn


def directory() -> SqliteDirectory:
    """Domains, accounts and aliases, over this request's connection."""
    found: SqliteDirectory | None = g.get("mailstead_directory")
    if found is None:
        found = SqliteDirectory(db())
        g.mailstead_directory = found
    return found


def _close_db(_exc: BaseException | None) -> None:
    conn: sqlite3.Connection | None = g.pop("mailstead_db", None)
    g.pop("mailstead_directory", None)
    if conn is not None:
        conn.close()
