"""A mail user's TOTP second factor for the console login (RFC 6238), kept in mailstead.db.

Enrolling stores a new secret as pending; only a correct code from the user's app turns it
on, so nobody is locked out by a scan that went wrong. Each accepted code's time step is
remembered and no code of that step or an earlier one is accepted again (RFC 6238 5.2:
"the verifier MUST NOT accept the second attempt of the same OTP").
The console's login asks `AccountTotp.enabled(address)` after the password and then
`AccountTotp.verify(address, code)`.
"""

from __future__ import annotations

import hmac
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp

from appliance.storage.app_passwords import account_id

STEP_SECONDS = 30        # RFC 6238 4.1: X, the time step
DIGITS = 6
ALLOWED_DRIFT = 1        # steps either side of now (RFC 6238 5.2: "at most one time step")
ISSUER = "Mailstead"


class TotpError(ValueError):
    """No such account, or nothing to confirm."""


@dataclass(frozen=True)
class TotpState:
    """Whether TOTP is on for an account, and whether an enrolment awaits its first code."""

    enabled: bool
    pending: bool


def provisioning_uri(secret: str, address: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=address, issuer_name=issuer)


def normalise_code(code: str) -> str | None:
    """The six digits of a code as typed (spaces allowed), or None."""
    digits = "".join(code.split())
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


class AccountTotp:
    """TOTP secrets of every account, in mailstead.db (table account_totp)."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._now = clock

    def state(self, address: str) -> TotpState:
        row = self._row(address)
        return TotpState(bool(row and row[1]), bool(row and not row[1]))

    def enabled(self, address: str) -> bool:
        """Whether the console must ask `address` for a code after the password."""
        return self.state(address).enabled

    def totp_secret(self, address: str) -> str | None:
        """The secret of an enabled second factor, or None."""
        row = self._row(address)
        return str(row[0]) if row is not None and row[1] else None

    def begin(self, address: str) -> str:
        """Store a new pending secret for `address` and return it (for the QR code).

        Raises:
            TotpError: no such account, or TOTP is already on (turn it off first).
        """
        owner = self._owner(address)
        if self.enabled(address):
            raise TotpError("two-factor login is already on: turn it off first")
        secret = pyotp.random_base32()
        self._conn.execute(
            "INSERT OR REPLACE INTO account_totp (account_id, secret, enabled, last_step, "
            "created_at) VALUES (?, ?, 0, 0, ?)", (owner, secret, int(self._now())))
        return secret

    def pending_secret(self, address: str) -> str | None:
        row = self._row(address)
        return str(row[0]) if row is not None and not row[1] else None

    def confirm(self, address: str, code: str) -> bool:
        """Turn TOTP on if `code` is right for the pending secret; False otherwise."""
        row = self._row(address)
        if row is None or row[1]:
            return False
        step = self._matching_step(str(row[0]), code, int(row[2]))
        if step is None:
            return False
        self._conn.execute("UPDATE account_totp SET enabled = 1, last_step = ? "
                           "WHERE account_id = ?", (step, self._owner(address)))
        return True

    def verify(self, address: str, code: str) -> bool:
        """Whether `code` is a fresh, right code for the enabled secret of `address`."""
        row = self._row(address)
        if row is None or not row[1]:
            return False
        step = self._matching_step(str(row[0]), code, int(row[2]))
        if step is None:
            return False
        # Only if no other request took this step meanwhile (a replay racing the first use).
        cursor = self._conn.execute(
            "UPDATE account_totp SET last_step = ? WHERE account_id = ? AND last_step < ?",
            (step, self._owner(address), step))
        return int(cursor.rowcount) == 1

    def disable(self, address: str) -> None:
        """Remove the second factor (or the pending enrolment) of `address`."""
        self._conn.execute("DELETE FROM account_totp WHERE account_id = ?",
                           (self._owner(address),))

    def _matching_step(self, secret: str, code: str, last_step: int) -> int | None:
        digits = normalise_code(code)
        if digits is None:
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        now_step = int(self._now()) // STEP_SECONDS
        for step in range(now_step - ALLOWED_DRIFT, now_step + ALLOWED_DRIFT + 1):
            if step > last_step and hmac.compare_digest(totp.at(step * STEP_SECONDS), digits):
                return step
        return None

    def _row(self, address: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(
            "SELECT secret, enabled, last_step FROM account_totp WHERE account_id = ?",
            (account_id(self._conn, address),)).fetchone()
        return row

    def _owner(self, address: str) -> int:
        owner = account_id(self._conn, address)
        if owner is None:
            raise TotpError(f"no such account: {address}")
        return owner
