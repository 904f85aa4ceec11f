"""The console's logins through the one login guard (appliance/auth/guard.py).

Three guards, each with its own counts and lockouts and the guard's logging and delays:
passwords (admins by username, mail users by address, one verifier for both; no app
passwords: they are for mail clients), TOTP codes (admins' and mail users'), and the
first-boot setup code. The guard is asyncio code; Flask views are not,
so each console process runs one event loop in a thread and views wait on it. Counts live in
memory, per process: gunicorn runs the console as one process (gunicorn.conf.py).
"""

from __future__ import annotations

import hmac
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from appliance.auth.guard import LoginGuard, LoginResult
from appliance.auth.guard_thread import GuardThread
from appliance.auth.passwords import Passwords
from appliance.auth.verify import ThreadLocalVerifier
from appliance.core.addresses import AddressError, parse_address
from appliance.settings import Settings
from appliance.storage.account_totp import AccountTotp
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from webui import admins, services, setup_code

EXTENSION = "mailstead.guards"
WAIT = 120.0                 # seconds a view waits for the guard (queue, argon2, delay)
SETUP_USER = "setup-code@" + admins.ADMIN_REALM


class ConsoleDirectory:
    """Password hashes of admins (the ADMIN_REALM addresses) and of mail accounts."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._accounts = SqliteDirectory(conn)

    def password_hash(self, address: str) -> str | None:
        admin = _admin_name(address)
        if admin is None:
            return self._accounts.password_hash(address)
        found = admins.get(self._conn, admin)
        return found.password_hash if found is not None else None

    def set_password_hash(self, address: str, password_hash: str) -> None:
        admin = _admin_name(address)
        if admin is None:
            self._accounts.set_password_hash(address, password_hash)
        else:
            admins.set_password_hash(self._conn, admin, password_hash)


def _admin_name(address: str) -> str | None:
    try:
        parsed = parse_address(address)
    except AddressError:
        return None
    return parsed.local_key if parsed.domain == admins.ADMIN_REALM else None


class _Threaded:
    """A verifier whose check needs a database connection of its own per thread."""

    def __init__(self, data_dir: Path, check: Callable[[sqlite3.Connection, str, str], bool]
                 ) -> None:
        self._data_dir = data_dir
        self._check = check
        self._local = threading.local()

    def verify(self, address: str, password: str) -> bool:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_database(self._data_dir)
            self._local.conn = conn
        return self._check(conn, address, password)


def _check_totp(conn: sqlite3.Connection, address: str, code: str) -> bool:
    """An admin's code (ADMIN_REALM address) or a mail user's (appliance.storage.account_totp)."""
    name = _admin_name(address)
    if name is not None:
        return admins.accept_totp(conn, name, code)
    return AccountTotp(conn).verify(address, code)


def _check_setup_code(data_dir: Path) -> Callable[[sqlite3.Connection, str, str], bool]:
    def check(_conn: sqlite3.Connection, _address: str, code: str) -> bool:
        stored = setup_code.read(data_dir)
        return stored is not None and hmac.compare_digest(
            setup_code.normalise(code).encode(), setup_code.normalise(stored).encode())
    return check


class Guards:
    """The console's three guards and the event loop they run on."""

    def __init__(self, settings: Settings) -> None:
        data_dir = settings.data_dir
        self._thread = GuardThread("console-guard")
        passwords = ThreadLocalVerifier(lambda: ConsoleDirectory(open_database(data_dir)),
                                        Passwords.from_settings(settings))
        self.passwords = LoginGuard.from_settings(settings, passwords)
        self.totp = LoginGuard.from_settings(settings, _Threaded(data_dir, _check_totp))
        self.setup = LoginGuard.from_settings(
            settings, _Threaded(data_dir, _check_setup_code(data_dir)))

    def run(self, attempt: Coroutine[Any, Any, LoginResult]) -> LoginResult:
        return self._thread.run(attempt, WAIT)

    def close(self) -> None:
        for guard in (self.passwords, self.totp, self.setup):
            guard.close()
        self._thread.stop()


_lock = threading.Lock()


def guards(app: Flask | None = None) -> Guards:
    """This process's guards (made on first use: after gunicorn forks its worker)."""
    target = app or current_app
    with _lock:
        found = target.extensions.get(EXTENSION)
        if found is None:
            with target.app_context():
                found = Guards(services.settings())
            target.extensions[EXTENSION] = found
    assert isinstance(found, Guards)
    return found


def check_password(username: str, password: str, client_ip: str) -> LoginResult:
    """An admin's username or a mail user's address, and the password."""
    return guards().run(guards().passwords.login(username, password, client_ip=client_ip,
                                                 protocol="console"))


def check_totp(kind: str, name: str, code: str, client_ip: str) -> LoginResult:
    """The second factor of an admin (`kind` "admin", by username) or a mail user ("user",
    by address)."""
    guard_name = admins.guard_name(name) if kind == "admin" else name
    return guards().run(guards().totp.login(guard_name, code, client_ip=client_ip,
                                            protocol="console-totp"))


def check_setup_code(code: str, client_ip: str) -> LoginResult:
    return guards().run(guards().setup.login(SETUP_USER, code, client_ip=client_ip,
                                             protocol="console-setup"))
