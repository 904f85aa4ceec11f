"""Checking an account's password against the directory, upgrading its hash when needed.

This is the primitive under the login guard (`guard.py`: rate limits, lockouts, logging):
a wrong password, an unknown account and a disabled account all look the same
and take the same time, because a dummy hash is verified when there is no real one.

Mail logins (IMAP, POP3, SMTP AUTH) also accept the account's app passwords
(`appliance.storage.app_passwords`). A login first tries the account password; if that
fails, exactly one more argon2 verification follows: the app password the 16-bit selector
points at, or the dummy hash when none does (unknown account, no app passwords, or a
password that cannot be one). So a failure costs two verifications whatever the account
has, and timing tells neither whether it exists nor how many app passwords it holds.
The console's login must not pass `app_passwords`: an app password is for mail clients and
would bypass the console's second factor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from appliance.auth.passwords import Passwords
from appliance.storage.app_passwords import Candidate, normalise


class PasswordDirectory(Protocol):
    def password_hash(self, address: str) -> str | None: ...

    def set_password_hash(self, address: str, password_hash: str) -> None: ...


class AppPasswordSource(Protocol):
    """Where app password hashes are kept (`AppPasswordStore`)."""

    def candidates(self, address: str, letters: str) -> list[Candidate]: ...

    def used(self, candidate: Candidate, new_hash: str | None = None) -> None: ...


class AccountVerifier:
    """Verify passwords of enabled accounts; store a fresh hash when parameters changed."""

    def __init__(self, directory: PasswordDirectory, passwords: Passwords,
                 app_passwords: AppPasswordSource | None = None) -> None:
        self._directory = directory
        self._passwords = passwords
        self._app_passwords = app_passwords
        self._dummy_hash = passwords.hash("dummy password for timing only")

    def verify(self, address: str, password: str) -> bool:
        stored = self._directory.password_hash(address)
        verdict = self._passwords.verify(stored or self._dummy_hash, password)
        if stored is not None and verdict.ok:
            if verdict.needs_rehash:
                self._directory.set_password_hash(address, self._passwords.rehash(password))
            return True
        if self._app_passwords is None:
            return False
        return self._verify_app_password(self._app_passwords, address, password)

    def _verify_app_password(self, source: AppPasswordSource, address: str,
                             password: str) -> bool:
        """One argon2 verification more, whatever the account has (see the module text)."""
        letters = normalise(password)
        candidates = source.candidates(address, letters) if letters is not None else []
        if not candidates:
            self._passwords.verify(self._dummy_hash, password)
            return False
        assert letters is not None
        for candidate in candidates:      # more than one only on a selector collision
            verdict = self._passwords.verify(candidate.password_hash, letters)
            if verdict.ok:
                source.used(candidate, self._passwords.rehash(letters)
                            if verdict.needs_rehash else None)
                return True
        return False


class ThreadLocalVerifier:
    """An AccountVerifier per worker thread, each with its own directory connection.

    The guard verifies in a thread pool; one sqlite3 connection must not be used by several
    threads at once, so each thread opens its own on first use (and, for mail logins, its
    own app password store through `open_app_passwords`).
    """

    def __init__(self, open_directory: Callable[[], PasswordDirectory],
                 passwords: Passwords, *,
                 open_app_passwords: Callable[[], AppPasswordSource] | None = None) -> None:
        self._open_directory = open_directory
        self._open_app_passwords = open_app_passwords
        self._passwords = passwords
        self._local = threading.local()

    def verify(self, address: str, password: str) -> bool:
        verifier: AccountVerifier | None = getattr(self._local, "verifier", None)
        if verifier is None:
            app_passwords = self._open_app_passwords() if self._open_app_passwords else None
            verifier = AccountVerifier(self._open_directory(), self._passwords, app_passwords)
            self._local.verifier = verifier
        return verifier.verify(address, password)
