"""Checking an account's password against the directory, upgrading its hash when needed.

This is the primitive under the login guard (`guard.py`: rate limits, lockouts, logging):
a wrong password, an unknown account and a disabled account all look the same
and take the same time, because a dummy hash is verified when there is no real one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from appliance.auth.passwords import Passwords


class PasswordDirectory(Protocol):
    def password_hash(self, address: str) -> str | None: ...

    def set_password_hash(self, address: str, password_hash: str) -> None: ...


class AccountVerifier:
    """Verify passwords of enabled accounts; store a fresh hash when parameters changed."""

    def __init__(self, directory: PasswordDirectory, passwords: Passwords) -> None:
        self._directory = directory
        self._passwords = passwords
        self._dummy_hash = passwords.hash("dummy password for timing only")

    def verify(self, address: str, password: str) -> bool:
        stored = self._directory.password_hash(address)
        verdict = self._passwords.verify(stored or self._dummy_hash, password)
        if stored is None or not verdict.ok:
            return False
        if verdict.needs_rehash:
            self._directory.set_password_hash(address, self._passwords.rehash(password))
        return True


class ThreadLocalVerifier:
    """An AccountVerifier per worker thread, each with its own directory connection.

    The guard verifies in a thread pool; one sqlite3 connection must not be used by several
    threads at once, so each thread opens its own on first use.
    """

    def __init__(self, open_directory: Callable[[], PasswordDirectory],
                 passwords: Passwords) -> None:
        self._open_directory = open_directory
        self._passwords = passwords
        self._local = threading.local()

    def verify(self, address: str, password: str) -> bool:
        verifier: AccountVerifier | None = getattr(self._local, "verifier", None)
        if verifier is None:
            verifier = AccountVerifier(self._open_directory(), self._passwords)
            self._local.verifier = verifier
        return verifier.verify(address, password)
