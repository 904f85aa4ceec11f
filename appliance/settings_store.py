"""Settings an admin edits, stored in mailstead.db (`settings (key, value)`), laid over the rest.

Precedence, lowest first: the schema's defaults, `mailstead.toml`, mailstead.db, the
environment. The file holds what the box needs to boot and its first values; the database
holds the admin's later choices (the console's and `mailstead config set`'s), so they win
over the file; `MAILSTEAD_SECTION__KEY` stays the operator's last word (a systemd drop-in,
a test), as it is for the file. Only `Setting.editable` names are read from the database.

A stored value was valid when it was written, so a bad one means the schema changed under
it (an update narrowed a range, a setting became boot-level or went away). Such a row is
ignored with a log line and shown on the console's settings page and by `config show`,
instead of stopping start-up as a bad mailstead.toml does: a refusal would also stop the
console, the one place where the admin can fix it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance.core import log
from appliance.settings import (
    SETTINGS_BY_NAME,
    Setting,
    Settings,
    SettingsError,
    load_settings,
    parse_text,
)
from appliance.storage.db import DB_NAME, immediate_transaction


@dataclass(frozen=True)
class Ignored:
    """A stored row that was not applied, and why (no secret value is kept here)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Effective:
    """Settings with the database's values applied, and the rows that were not."""

    settings: Settings
    ignored: tuple[Ignored, ...] = ()


def to_text(setting: Setting, value: Any) -> str:
    """The stored (and typed) form of a value: `true`/`false`, decimal, or the string."""
    if setting.kind is bool:
        return "true" if value else "false"
    return str(value)


def editable_setting(name: str) -> Setting:
    """The schema entry of an editable setting.

    Raises:
        SettingsError: the name is unknown or the setting is boot-level (mailstead.toml).
    """
    setting = SETTINGS_BY_NAME.get(name)
    if setting is None:
        raise SettingsError(f"unknown setting {name}")
    if not setting.editable:
        raise SettingsError(f"setting {name} is boot-level: set it in mailstead.toml")
    return setting


def read_rows(conn: sqlite3.Connection) -> dict[str, str]:
    """Every row of the `settings` table (none when the schema does not have it yet)."""
    try:
        rows = conn.execute("SELECT key, value FROM settings").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return {str(key): str(value) for key, value in rows}


def apply_rows(base: Settings, rows: Mapping[str, str]) -> Effective:
    """`base` with the stored values of editable settings applied, except where the
    environment set the value (it wins); bad or non-editable rows are listed as ignored."""
    values = dict(base.values)
    origins = dict(base.origins)
    ignored: list[Ignored] = []
    for name, text in sorted(rows.items()):
        try:
            value = parse_text(editable_setting(name), text)
        except SettingsError as exc:
            ignored.append(Ignored(name, str(exc)))
            continue
        if base.origin(name) != "environment":
            values[name] = value
            origins[name] = "database"
    return Effective(replace(base, values=values, origins=origins), tuple(ignored))


def store(conn: sqlite3.Connection, name: str, text: str) -> Any:
    """Check `text` as a value of the editable setting `name` and store it (one transaction).

    Returns:
        The value in the setting's type.
    Raises:
        SettingsError: unknown or boot-level setting, or a value it does not accept.
    """
    return store_many(conn, {name: text})[name]


def check_many(texts: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check several typed values: (values by name, error messages by name)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in texts.items():
        try:
            values[name] = parse_text(editable_setting(name), text)
        except SettingsError as exc:
            errors[name] = str(exc)
    return values, errors


def store_many(conn: sqlite3.Connection, texts: Mapping[str, str]) -> dict[str, Any]:
    """Check every value, then store all of them in one transaction, or none.

    Returns:
        The values in their settings' types, by name.
    Raises:
        SettingsError: the first value refused (nothing is stored).
    """
    values, errors = check_many(texts)
    if errors:
        raise SettingsError(next(iter(errors.values())))
    with immediate_transaction(conn):
        for name, value in values.items():
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value",
                         (name, to_text(SETTINGS_BY_NAME[name], value)))
    return values


def remove(conn: sqlite3.Connection, name: str) -> bool:
    """Delete the stored value of `name` (back to the file's or the default); whether one
    was stored. Any stored row may be removed, also one that is ignored."""
    with immediate_transaction(conn):
        cursor = conn.execute("DELETE FROM settings WHERE key = ?", (name,))
    return cursor.rowcount > 0


def open_reader(data_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection to mailstead.db, or None when it does not exist yet (the
    engine creates it at its first start; reading must not create or migrate it)."""
    path = data_dir / DB_NAME
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0,
                               isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise SettingsError(f"cannot read settings from {path}: {exc}") from exc
    return conn


def with_database(base: Settings) -> Effective:
    """`base` with the values stored in its data_dir's mailstead.db applied.

    Raises:
        SettingsError: mailstead.db exists but cannot be read.
    """
    conn = open_reader(base.data_dir)
    if conn is None:
        return Effective(base)
    try:
        return apply_rows(base, read_rows(conn))
    except sqlite3.Error as exc:
        raise SettingsError(f"cannot read settings from {base.data_dir / DB_NAME}: "
                            f"{exc}") from exc
    finally:
        conn.close()


def load_effective(config_file: Path | None,
                   environ: Mapping[str, str] | None = None) -> Effective:
    """Defaults, mailstead.toml, mailstead.db, the environment: what the engine, the CLI
    and the console run with. `load_settings` stays the pure part (no database).

    Raises:
        SettingsError: a bad mailstead.toml or environment value, or an unreadable database.
    """
    return with_database(load_settings(config_file, environ))


def log_ignored(ignored: tuple[Ignored, ...]) -> None:
    for item in ignored:
        log.event("settings.stored_value_ignored", level=logging.WARNING, setting=item.name,
                  reason=item.reason)


class LiveSettings:
    """The console's view: base settings plus the database's values, re-read only when
    mailstead.db changed. `PRAGMA data_version` on one long-lived reader connection changes
    whenever another connection commits, so an unchanged database costs one pragma per
    request, and the console sees its own edits at once. Safe across gunicorn's threads
    (one lock) and forks (a new connection in a new process)."""

    def __init__(self, base: Settings) -> None:
        self.base = base
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._version: int | None = None
        self._current = Effective(base)

    def current(self) -> Effective:
        with self._lock:
            conn = self._reader()
            if conn is None:
                return self._current
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version != self._version:
                self._current = apply_rows(self.base, read_rows(conn))
                self._version = version
            return self._current

    def _reader(self) -> sqlite3.Connection | None:
        if self._conn is None or self._pid != os.getpid():
            self._conn = open_reader(self.base.data_dir)
            self._pid, self._version = os.getpid(), None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
