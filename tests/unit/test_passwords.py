"""argon2id password hashing: verification, rehash on parameter change, password rules."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type

from appliance.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Passwords,
    Verdict,
    WeakPasswordError,
    check_password_rules,
)
from appliance.settings import load_settings

GOOD = "correct horse battery"


@pytest.fixture(scope="module")
def cheap() -> Passwords:
    return Passwords(time_cost=1, memory_kib=8192, parallelism=1)


@pytest.fixture(scope="module")
def stored(cheap: Passwords) -> str:
    return cheap.hash(GOOD)


def test_hash_is_argon2id_with_the_configured_parameters(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert GOOD not in stored


def test_hashes_are_salted(cheap: Passwords, stored: str) -> None:
    assert cheap.hash(GOOD) != stored


def test_verify_right_and_wrong(cheap: Passwords, stored: str) -> None:
    assert cheap.verify(stored, GOOD) == Verdict(True, False)
    assert cheap.verify(stored, GOOD.upper()) == Verdict(False)
    assert cheap.verify(stored, GOOD + " ") == Verdict(False)
    assert cheap.verify(stored, "") == Verdict(False)


def test_verify_never_raises_on_bad_input(cheap: Passwords) -> None:
    assert not cheap.verify("not a hash", GOOD).ok
    assert not cheap.verify("", GOOD).ok
    assert not cheap.verify("$argon2id$v=19$m=8192,t=1,p=1$broken", GOOD).ok
    longest = "x" * MAX_PASSWORD_LENGTH
    assert not cheap.verify(cheap.hash(longest), longest + "x").ok


def test_needs_rehash_when_parameters_change(stored: str) -> None:
    stronger = Passwords(time_cost=2, memory_kib=8192, parallelism=1)
    verdict = stronger.verify(stored, GOOD)
    assert verdict.ok
    assert verdict.needs_rehash
    assert not stronger.verify(stronger.hash(GOOD), GOOD).needs_rehash
    more_memory = Passwords(time_cost=1, memory_kib=16384, parallelism=1)
    assert more_memory.verify(stored, GOOD).needs_rehash


def test_other_argon2_types_verify_and_need_rehash(cheap: Passwords) -> None:
    legacy = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.I)
    verdict = cheap.verify(legacy.hash(GOOD), GOOD)
    assert verdict == Verdict(True, True)


def test_from_settings_uses_the_auth_section() -> None:
    current = load_settings(None, {"MAILSTEAD_AUTH__ARGON2_TIME_COST": "1",
                                   "MAILSTEAD_AUTH__ARGON2_MEMORY_KIB": "8192",
                                   "MAILSTEAD_AUTH__ARGON2_PARALLELISM": "1"})
    assert Passwords.from_settings(current).hash(GOOD).startswith(
        "$argon2id$v=19$m=8192,t=1,p=1$")


@pytest.mark.parametrize(("password", "reason"), [
    ("", "too short"),
    ("x" * (MIN_PASSWORD_LENGTH - 1), "too short"),
    ("x" * (MAX_PASSWORD_LENGTH + 1), "too long"),
    ("good password\n", "control"),
    ("good\tpassword", "control"),
    ("good\x00password", "control"),
    ("good\x7fpassword", "control"),
])
def test_rules_refuse(cheap: Passwords, password: str, reason: str) -> None:
    with pytest.raises(WeakPasswordError, match=reason):
        check_password_rules(password)
    with pytest.raises(WeakPasswordError):
        cheap.hash(password)


@pytest.mark.parametrize("password", [
    "x" * MIN_PASSWORD_LENGTH, "x" * MAX_PASSWORD_LENGTH,
    "pässwörd mit ümlauten", "日本語のパスワードです",
])
def test_rules_accept(password: str) -> None:
    check_password_rules(password)
