"""Console administrators in `console_admins`: names, the strong-password rule, TOTP.

Admins log in with a username (not an address); the login guard counts and logs them as
`<username>@console.invalid` (RFC 2606 reserves .invalid, so no mail domain collides).
TOTP is RFC 6238 (30-second steps, 6 digits, SHA-1: what authenticator apps accept).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

import pyotp

from appliance.auth.passwords import WeakPasswordError, check_password_rules

ADMIN_REALM = "console.invalid"
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
MIN_ADMIN_PASSWORD = 12
TOTP_ISSUER = "Mailstead"
COMMON = frozenset({"password1234", "administrator", "qwertyuiopas", "123456789012",
                    "mailstead123", "letmein12345", "changeme1234", "passwordpassword"})


class AdminError(ValueError):
    """An admin cannot be created or changed as asked; the text says why."""


@dataclass(frozen=True)
class Admin:
    username: str
    password_hash: str
    totp_secret: str | None
    totp_last_step: int


def normalise_username(text: str) -> str:
    """A valid admin username in lower case, or AdminError."""
    name = text.strip().lower()
    if not USERNAME.fullmatch(name):
        raise AdminError("a username is 1 to 32 characters: letters, digits, '.', '_', '-'")
    return name


def guard_name(username: str) -> str:
    """The address under which the login guard counts an admin."""
    return f"{username}@{ADMIN_REALM}"


def check_strong_password(password: str, username: str) -> None:
    """The admin password rule: 12+ characters, and either 3 kinds of character (lower,
    upper, digit, other) or 20+ characters (a passphrase); not the username, not common.

    Raises:
        WeakPasswordError: with the reason to show.
    """
    check_password_rules(password)
    if len(password) < MIN_ADMIN_PASSWORD:
        raise WeakPasswordError(f"use at least {MIN_ADMIN_PASSWORD} characters")
    kinds = sum(any(test(c) for c in password)
                for test in (str.islower, str.isupper, str.isdigit,
                             lambda c: not c.isalnum()))
    if kinds < 3 and len(password) < 20:
        raise WeakPasswordError("mix three of: lower case, upper case, digits, symbols — "
                                "or use a passphrase of 20 characters or more")
    lowered = password.lower()
    if (username and username in lowered) or lowered in COMMON or len(set(lowered)) < 5:
        raise WeakPasswordError("that password is too easy to guess")


def exists(conn: sqlite3.Connection, username: str) -> bool:
    return conn.execute("SELECT 1 FROM console_admins WHERE username = ?",
                        (username,)).fetchone() is not None


def any_admin(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM console_admins LIMIT 1").fetchone() is not None


def get(conn: sqlite3.Connection, username: str) -> Admin | None:
    row = conn.execute("SELECT username, password_hash, totp_secret, totp_last_step "
                       "FROM console_admins WHERE username = ?", (username,)).fetchone()
    if row is None:
        return None
    return Admin(row[0], row[1], row[2], int(row[3]))


def create(conn: sqlite3.Connection, username: str, password_hash: str) -> None:
    try:
        conn.execute("INSERT INTO console_admins (username, password_hash, created_at) "
                     "VALUES (?, ?, ?)", (username, password_hash, int(time.time())))
    except sqlite3.IntegrityError as exc:
        raise AdminError(f"admin {username} already exists") from exc


def set_password_hash(conn: sqlite3.Connection, username: str, password_hash: str) -> None:
    conn.execute("UPDATE console_admins SET password_hash = ? WHERE username = ?",
                 (password_hash, username))


def set_totp(conn: sqlite3.Connection, username: str, secret: str | None) -> None:
    conn.execute("UPDATE console_admins SET totp_secret = ?, totp_last_step = 0 "
                 "WHERE username = ?", (secret, username))


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step `code` is valid for (this one or one either side: clock drift,
    RFC 6238 5.2), or None. Codes are digits only."""
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit()) or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // totp.interval)
    for step in (current, current - 1, current + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None


def accept_totp(conn: sqlite3.Connection, username: str, code: str) -> bool:
    """Check a TOTP code and burn its step, so the same code cannot be used twice."""
    admin = get(conn, username)
    if admin is None or admin.totp_secret is None:
        return False
    step = totp_step(admin.totp_secret, code)
    if step is None or step <= admin.totp_last_step:
        return False
    updated = conn.execute("UPDATE console_admins SET totp_last_step = ? "
                           "WHERE username = ? AND totp_last_step < ?",
                           (step, username, step)).rowcount
    return bool(updated)
