"""App passwords: generated passwords a user gives a mail client instead of their own one.

Each is 16 random lower-case letters shown once as `abcd-efgh-ijkl-mnop` (26^16 is about
2^75), kept only as an argon2id hash, and revocable on its own. A login may try the account
password and then the app passwords (`appliance.auth.verify`); so that this costs one argon2
verification and not one per app password, each row also keeps a 16-bit `selector` (four hex
digits of SHA-256 of the password) that says which hash to try. Sixteen bits of a 75-bit
random secret help nobody guess it, and an account has at most `MAX_APP_PASSWORDS`.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import sqlite3
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.auth.passwords import Passwords
from appliance.core import log
from appliance.core.addresses import AddressError, parse_address
from appliance.storage.db import immediate_transaction

MAX_APP_PASSWORDS = 20          # per account: bounds the list and the rare selector collisions
MAX_LABEL_LENGTH = 64
GROUPS, GROUP_LENGTH = 4, 4     # the shape shown to the user
SECRET_LENGTH = GROUPS * GROUP_LENGTH
LAST_USED_RESOLUTION = 300      # seconds: "last used" is not rewritten on every login
_ALPHABET = string.ascii_lowercase
_SEPARATORS = str.maketrans("", "", "- \t")


class AppPasswordError(ValueError):
    """A request that cannot be carried out (unknown account, too many, bad label, no such)."""


@dataclass(frozen=True)
class AppPassword:
    """One app password as listed (never its secret)."""

    id: int
    label: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True)
class NewAppPassword:
    """A freshly created app password: `secret` is shown to the user once, then forgotten."""

    record: AppPassword
    secret: str


@dataclass(frozen=True)
class Candidate:
    """A stored hash whose selector matches a password being checked."""

    id: int
    password_hash: str
    last_used_at: int | None


def generate() -> str:
    """A new app password in its display form, `abcd-efgh-ijkl-mnop`."""
    letters = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    return "-".join(letters[i:i + GROUP_LENGTH] for i in range(0, SECRET_LENGTH, GROUP_LENGTH))


def normalise(password: str) -> str | None:
    """The 16 letters of an app password as typed (any case, with or without dashes or
    spaces), or None when `password` cannot be one."""
    if len(password) > 4 * SECRET_LENGTH:
        return None
    letters = password.translate(_SEPARATORS).lower()
    if len(letters) != SECRET_LENGTH or any(c not in _ALPHABET for c in letters):
        return None
    return letters


def selector(letters: str) -> str:
    """The 16-bit selector of a normalised app password."""
    return hashlib.sha256(letters.encode("ascii")).hexdigest()[:4]


def check_label(label: str) -> str:
    """The label stripped, or AppPasswordError when empty, too long or with control chars."""
    cleaned = label.strip()
    if not cleaned:
        raise AppPasswordError("give the app password a name, such as the device it is for")
    if len(cleaned) > MAX_LABEL_LENGTH:
        raise AppPasswordError(f"the name is too long: at most {MAX_LABEL_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in cleaned):
        raise AppPasswordError("the name contains control characters")
    return cleaned


def account_id(conn: sqlite3.Connection, address: str) -> int | None:
    """The id of the account `address` names (enabled or not), or None."""
    try:
        addr = parse_address(address)
    except AddressError:
        return None
    row = conn.execute(
        "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id "
        "WHERE d.name = ? AND a.local_key = ?", (addr.domain, addr.local_key)).fetchone()
    return int(row[0]) if row is not None else None


class AppPasswordStore:
    """The app passwords of every account, in mailstead.db."""

    def __init__(self, conn: sqlite3.Connection, passwords: Passwords,
                 clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._passwords = passwords
        self._now = clock

    # -- the console ------------------------------------------------------------------------

    def create(self, address: str, label: str) -> NewAppPassword:
        """Make an app password for `address`.

        Raises:
            AppPasswordError: no such account, a bad label, or already `MAX_APP_PASSWORDS`.
        """
        cleaned = check_label(label)
        secret = generate()
        letters = normalise(secret)
        assert letters is not None
        hashed = self._passwords.hash(letters)      # outside the write lock: argon2 is slow
        now = int(self._now())
        with immediate_transaction(self._conn):
            owner = self._owner(address)
            count = self._conn.execute("SELECT count(*) FROM app_passwords WHERE account_id = ?",
                                       (owner,)).fetchone()[0]
            if count >= MAX_APP_PASSWORDS:
                raise AppPasswordError(f"an account has at most {MAX_APP_PASSWORDS} app "
                                       "passwords: revoke one you no longer use first")
            cursor = self._conn.execute(
                "INSERT INTO app_passwords (account_id, label, selector, password_hash, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (owner, cleaned, selector(letters), hashed, now))
        assert cursor.lastrowid is not None
        return NewAppPassword(AppPassword(cursor.lastrowid, cleaned, now, None), secret)

    def list(self, address: str) -> builtins.list[AppPassword]:
        """The app passwords of `address`, oldest first (none for an unknown account)."""
        owner = account_id(self._conn, address)
        rows = self._conn.execute(
            "SELECT id, label, created_at, last_used_at FROM app_passwords "
            "WHERE account_id = ? ORDER BY id", (owner,))
        return [AppPassword(int(r[0]), str(r[1]), int(r[2]),
                            int(r[3]) if r[3] is not None else None) for r in rows]

    def revoke(self, address: str, password_id: int) -> str:
        """Delete one app password of `address`; return its label.

        Raises:
            AppPasswordError: `address` has no app password with that id (also when another
                account has: one user cannot revoke another's).
        """
        owner = self._owner(address)
        row = self._conn.execute(
            "DELETE FROM app_passwords WHERE id = ? AND account_id = ? RETURNING label",
            (password_id, owner)).fetchone()
        if row is None:
            raise AppPasswordError("no such app password")
        return str(row[0])

    def revoke_all(self, address: str) -> int:
        """Delete every app password of `address` (after a password reset); return how many."""
        owner = self._owner(address)
        cursor = self._conn.execute("DELETE FROM app_passwords WHERE account_id = ?", (owner,))
        return int(cursor.rowcount)

    # -- the login path (appliance.auth.verify.AppPasswordSource) ----------------------------

    def candidates(self, address: str, letters: str) -> builtins.list[Candidate]:
        """Stored hashes of the enabled account `address` that `letters` (a normalised app
        password) may match: usually none or one."""
        try:
            addr = parse_address(address)
        except AddressError:
            return []
        rows = self._conn.execute(
            "SELECT p.id, p.password_hash, p.last_used_at FROM app_passwords p "
            "JOIN accounts a ON a.id = p.account_id JOIN domains d ON d.id = a.domain_id "
            "WHERE d.name = ? AND a.local_key = ? AND a.enabled = 1 AND p.selector = ? "
            "ORDER BY p.id LIMIT ?",
            (addr.domain, addr.local_key, selector(letters), MAX_APP_PASSWORDS))
        return [Candidate(int(r[0]), str(r[1]), int(r[2]) if r[2] is not None else None)
                for r in rows]

    def used(self, candidate: Candidate, new_hash: str | None = None) -> None:
        """Record a successful login with `candidate`, storing `new_hash` if given; the time
        is written at most every `LAST_USED_RESOLUTION` seconds (no write per login)."""
        now = int(self._now())
        stale = candidate.last_used_at is None or \
            now - candidate.last_used_at >= LAST_USED_RESOLUTION
        try:
            if new_hash is not None:
                self._conn.execute("UPDATE app_passwords SET password_hash = ?, "
                                   "last_used_at = ? WHERE id = ?", (new_hash, now, candidate.id))
            elif stale:
                self._conn.execute("UPDATE app_passwords SET last_used_at = ? WHERE id = ?",
                                   (now, candidate.id))
        except sqlite3.OperationalError as exc:
            # A busy or read-only database must not turn a right password into a refusal.
            log.error("app_password.touch_failed", exc, app_password=candidate.id)

    def _owner(self, address: str) -> int:
        owner = account_id(self._conn, address)
        if owner is None:
            raise AppPasswordError(f"no such account: {address}")
        return owner
