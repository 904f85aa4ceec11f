"""The first-boot wizard's progress and choices (table `console_setup`, key/value).

Steps are done in order; the wizard resumes at the first one not done. The hostname and
time zone chosen are settings (`server.hostname`, `server.timezone`): `put_setting` stores
them through settings_store.py in the `settings` table, which the engine, the CLI and the
console read; `console_setup` keeps only the wizard's own record of what it was given.
"""

from __future__ import annotations

import sqlite3

from appliance import settings_store

STEPS: tuple[str, ...] = ("admin", "totp", "host", "timezone", "tls", "dkim")


def get(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM console_setup WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row is not None else None


def put(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO console_setup (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def put_setting(conn: sqlite3.Connection, name: str, value: str) -> None:
    """Store an editable setting (schema name, text value), checked by the schema.

    Raises:
        SettingsError: the schema does not accept the value.
    """
    settings_store.store(conn, name, value)


def mark_done(conn: sqlite3.Connection, step: str) -> None:
    assert step in STEPS
    put(conn, f"step.{step}", "done")


def done_steps(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT key FROM console_setup WHERE key LIKE 'step.%'")
    return {str(r[0]).removeprefix("step.") for r in rows}


def next_step(conn: sqlite3.Connection) -> str | None:
    """The first step not done yet, or None when the wizard is complete."""
    done = done_steps(conn)
    return next((step for step in STEPS if step not in done), None)
