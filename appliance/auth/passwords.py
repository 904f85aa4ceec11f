"""argon2id password hashes (argon2-cffi): hash, verify in constant time, rehash on change."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.settings import Settings

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


class WeakPasswordError(ValueError):
    """The password does not meet the minimum rules."""


@dataclass(frozen=True)
class Verdict:
    """The result of a verification: whether it matched and whether to store a new hash."""

    ok: bool
    needs_rehash: bool = False


class Passwords:
    """Hash and verify account passwords with the configured argon2id parameters."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                      parallelism=parallelism, type=Type.ID)

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(settings.get_int("auth.argon2_time_cost"),
                   settings.get_int("auth.argon2_memory_kib"),
                   settings.get_int("auth.argon2_parallelism"))

    def hash(self, password: str) -> str:
        """Return the argon2id PHC string for `password` after checking the basic rules."""
        check_password_rules(password)
        return self._hasher.hash(password)

    def rehash(self, password: str) -> str:
        """A new hash of an already accepted password with the current parameters."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> Verdict:
        """Check `password` against `stored_hash`; never raises for a wrong password."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return Verdict(False)
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verdict(False)
        return Verdict(True, self._hasher.check_needs_rehash(stored_hash))


def check_password_rules(password: str) -> None:
    """Refuse passwords that are too short, too long or contain control characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise WeakPasswordError("password contains control characters")
