"""App passwords: the store (create shown once, list, revoke, bounds) and the login verifier
that accepts them beside the account password at a constant number of argon2 runs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from appliance.auth.passwords import Passwords, Verdict
from appliance.auth.verify import AccountVerifier, ThreadLocalVerifier
from appliance.storage.app_passwords import (
    LAST_USED_RESOLUTION,
    MAX_APP_PASSWORDS,
    MAX_LABEL_LENGTH,
    AppPasswordError,
    AppPasswordStore,
    generate,
    normalise,
    selector,
)
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from harness.clock import ManualClock

ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORD = "correct horse battery"


class CountingPasswords(Passwords):
    """The real argon2id hasher, counting verifications (the cost a login pays)."""

    def __init__(self, time_cost: int = 1) -> None:
        super().__init__(time_cost=time_cost, memory_kib=8192, parallelism=1)
        self.verifications = 0

    def verify(self, stored_hash: str, password: str) -> Verdict:
        self.verifications += 1
        return super().verify(stored_hash, password)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_database(tmp_path)


@pytest.fixture
def passwords() -> CountingPasswords:
    return CountingPasswords()


@pytest.fixture
def directory(conn: sqlite3.Connection, passwords: CountingPasswords) -> SqliteDirectory:
    d = SqliteDirectory(conn)
    d.add_domain("example.test")
    d.add_account(ALICE, passwords.hash(PASSWORD))
    d.add_account(BOB, passwords.hash(PASSWORD))
    return d


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(conn: sqlite3.Connection, passwords: CountingPasswords, clock: ManualClock,
          directory: SqliteDirectory) -> AppPasswordStore:
    return AppPasswordStore(conn, passwords, clock)


@pytest.fixture
def verifier(directory: SqliteDirectory, passwords: CountingPasswords,
             store: AppPasswordStore) -> AccountVerifier:
    return AccountVerifier(directory, passwords, store)


def count(passwords: CountingPasswords, verifier: AccountVerifier, address: str,
          password: str) -> tuple[bool, int]:
    before = passwords.verifications
    ok = verifier.verify(address, password)
    return ok, passwords.verifications - before


# -- generating and normalising ------------------------------------------------------------

def test_generated_passwords_are_four_groups_of_four_letters() -> None:
    made = {generate() for _ in range(50)}
    assert len(made) == 50
    assert all(re.fullmatch(r"[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}", p) for p in made)


@pytest.mark.parametrize("typed", ["abcd-efgh-ijkl-mnop", "ABCD EFGH IJKL MNOP",
                                   "abcdefghijklmnop", " abcd-efgh ijkl-mnop\t"])
def test_typed_forms_normalise_to_the_letters(typed: str) -> None:
    assert normalise(typed) == "abcdefghijklmnop"


@pytest.mark.parametrize("typed", ["", "abcd-efgh-ijkl-mno", "abcd-efgh-ijkl-mnopq",
                                   "abcd-efgh-ijkl-mnö1", "abcd_efgh_ijkl_mnop",
                                   "-" * 1000 + "abcdefghijklmnop", "ａｂｃｄefghijklmnop"])
def test_what_cannot_be_an_app_password(typed: str) -> None:
    assert normalise(typed) is None


def test_selector_is_four_hex_digits_of_sha256() -> None:
    assert selector("abcdefghijklmnop") == "f39d"   # sha256("abcdefghijklmnop")[:4]


# -- the store -----------------------------------------------------------------------------

def test_create_shows_the_secret_once_and_keeps_only_a_hash(
        store: AppPasswordStore, conn: sqlite3.Connection, clock: ManualClock) -> None:
    made = store.create(ALICE, "  Phone  ")
    assert made.record.label == "Phone"
    assert made.record.created_at == int(clock.now)
    assert made.record.last_used_at is None
    letters = normalise(made.secret)
    assert letters is not None
    dump = "\n".join(conn.iterdump())
    assert letters not in dump
    assert made.secret not in dump
    row = conn.execute("SELECT password_hash, selector FROM app_passwords").fetchone()
    assert row[0].startswith("$argon2id$")
    assert row[1] == selector(letters)
    assert store.list(ALICE) == [made.record]
    assert store.list(BOB) == []


def test_revoke_only_ones_own(store: AppPasswordStore) -> None:
    first = store.create(ALICE, "phone").record
    second = store.create(ALICE, "laptop").record
    with pytest.raises(AppPasswordError, match="no such app password"):
        store.revoke(BOB, first.id)              # someone else's id
    assert store.revoke(ALICE, first.id) == "phone"
    assert store.list(ALICE) == [second]
    with pytest.raises(AppPasswordError, match="no such app password"):
        store.revoke(ALICE, first.id)            # already gone
    assert store.revoke_all(ALICE) == 1
    assert store.list(ALICE) == []


@pytest.mark.parametrize(("label", "message"), [
    ("", "give the app password a name"), ("   ", "give the app password a name"),
    ("x" * (MAX_LABEL_LENGTH + 1), "too long"), ("tab\there", "control characters")])
def test_bad_labels_are_refused(store: AppPasswordStore, label: str, message: str) -> None:
    with pytest.raises(AppPasswordError, match=message):
        store.create(ALICE, label)
    assert store.list(ALICE) == []


def test_unknown_account(store: AppPasswordStore) -> None:
    with pytest.raises(AppPasswordError, match="no such account"):
        store.create("nobody@example.test", "phone")
    with pytest.raises(AppPasswordError, match="no such account"):
        store.revoke("not an address", 1)
    assert store.list("nobody@example.test") == []


def test_at_most_max_app_passwords(store: AppPasswordStore) -> None:
    for n in range(MAX_APP_PASSWORDS):
        store.create(ALICE, f"device {n}")
    with pytest.raises(AppPasswordError, match=f"at most {MAX_APP_PASSWORDS}"):
        store.create(ALICE, "one more")
    assert len(store.list(ALICE)) == MAX_APP_PASSWORDS
    store.create(BOB, "bob's own")                # the bound is per account


def test_deleting_the_account_deletes_its_app_passwords(
        store: AppPasswordStore, directory: SqliteDirectory, conn: sqlite3.Connection) -> None:
    store.create(ALICE, "phone")
    directory.remove_account(ALICE)
    assert conn.execute("SELECT count(*) FROM app_passwords").fetchone()[0] == 0


# -- the verifier --------------------------------------------------------------------------

def test_app_password_logs_in_in_any_typed_form(
        store: AppPasswordStore, verifier: AccountVerifier) -> None:
    secret = store.create(ALICE, "phone").secret
    assert verifier.verify(ALICE, secret)
    assert verifier.verify("Alice@EXAMPLE.test", secret.upper().replace("-", " "))
    assert verifier.verify(ALICE, PASSWORD)               # the account password still works
    assert not verifier.verify(BOB, secret)               # only for its own account


def test_revoked_app_password_no_longer_logs_in(
        store: AppPasswordStore, verifier: AccountVerifier) -> None:
    made = store.create(ALICE, "phone")
    assert verifier.verify(ALICE, made.secret)
    store.revoke(ALICE, made.record.id)
    assert not verifier.verify(ALICE, made.secret)


def test_disabled_account_refuses_its_app_passwords(
        store: AppPasswordStore, verifier: AccountVerifier, directory: SqliteDirectory) -> None:
    secret = store.create(ALICE, "phone").secret
    directory.set_enabled(ALICE, False)
    assert not verifier.verify(ALICE, secret)
    directory.set_enabled(ALICE, True)
    assert verifier.verify(ALICE, secret)


def test_without_a_source_app_passwords_are_refused(
        store: AppPasswordStore, directory: SqliteDirectory,
        passwords: CountingPasswords) -> None:
    """The console's login builds its verifier without app passwords."""
    secret = store.create(ALICE, "phone").secret
    console = AccountVerifier(directory, passwords)
    assert not console.verify(ALICE, secret)
    assert console.verify(ALICE, PASSWORD)


def test_a_failure_costs_two_verifications_whatever_the_account_has(
        store: AppPasswordStore, verifier: AccountVerifier,
        passwords: CountingPasswords) -> None:
    for n in range(MAX_APP_PASSWORDS):
        store.create(ALICE, f"device {n}")
    wrong = generate()
    costs = {
        "many app passwords, app-shaped guess": count(passwords, verifier, ALICE, wrong),
        "many app passwords, other guess": count(passwords, verifier, ALICE, "wrong password"),
        "no app passwords": count(passwords, verifier, BOB, wrong),
        "unknown account": count(passwords, verifier, "nobody@example.test", wrong),
        "malformed username": count(passwords, verifier, "not an address", wrong),
    }
    assert set(costs.values()) == {(False, 2)}, costs


def test_successes_cost_one_or_two_verifications(
        store: AppPasswordStore, verifier: AccountVerifier,
        passwords: CountingPasswords) -> None:
    secrets = [store.create(ALICE, f"device {n}").secret for n in range(MAX_APP_PASSWORDS)]
    assert count(passwords, verifier, ALICE, PASSWORD) == (True, 1)
    assert {count(passwords, verifier, ALICE, s) for s in secrets} == {(True, 2)}


def test_a_selector_collision_tries_both_hashes(
        store: AppPasswordStore, verifier: AccountVerifier, conn: sqlite3.Connection) -> None:
    first = store.create(ALICE, "first")
    second = store.create(ALICE, "second")
    letters = normalise(second.secret)
    assert letters is not None
    conn.execute("UPDATE app_passwords SET selector = ?", (selector(letters),))
    assert verifier.verify(ALICE, second.secret)
    assert not verifier.verify(ALICE, first.secret)      # its selector now points elsewhere


def test_last_used_is_recorded_without_a_write_per_login(
        store: AppPasswordStore, verifier: AccountVerifier, clock: ManualClock,
        conn: sqlite3.Connection) -> None:
    made = store.create(ALICE, "phone")
    assert verifier.verify(ALICE, made.secret)
    assert store.list(ALICE)[0].last_used_at == int(clock.now)
    first_use = int(clock.now)
    clock.now += LAST_USED_RESOLUTION - 1
    changes = conn.total_changes
    assert verifier.verify(ALICE, made.secret)
    assert conn.total_changes == changes                 # nothing written
    assert store.list(ALICE)[0].last_used_at == first_use
    clock.now += 1
    assert verifier.verify(ALICE, made.secret)
    assert store.list(ALICE)[0].last_used_at == int(clock.now)


def test_an_old_hash_is_upgraded_at_login(
        conn: sqlite3.Connection, directory: SqliteDirectory, clock: ManualClock) -> None:
    old = AppPasswordStore(conn, CountingPasswords(time_cost=1), clock)
    secret = old.create(ALICE, "phone").secret
    stronger = CountingPasswords(time_cost=2)
    verifier = AccountVerifier(directory, stronger, AppPasswordStore(conn, stronger, clock))
    assert verifier.verify(ALICE, secret)
    stored = conn.execute("SELECT password_hash FROM app_passwords").fetchone()[0]
    assert ",t=2," in stored
    assert verifier.verify(ALICE, secret)


def test_thread_local_verifier_uses_app_passwords_when_given(
        tmp_path: Path, store: AppPasswordStore, passwords: CountingPasswords) -> None:
    secret = store.create(ALICE, "phone").secret
    mail = ThreadLocalVerifier(lambda: SqliteDirectory(open_database(tmp_path)), passwords,
                               open_app_passwords=lambda: AppPasswordStore(
                                   open_database(tmp_path), passwords))
    console = ThreadLocalVerifier(lambda: SqliteDirectory(open_database(tmp_path)), passwords)
    assert mail.verify(ALICE, secret)
    assert not console.verify(ALICE, secret)
    assert mail.verify(ALICE, PASSWORD)
    assert console.verify(ALICE, PASSWORD)


def test_a_database_that_cannot_be_written_still_lets_the_right_password_in(
        tmp_path: Path, store: AppPasswordStore, directory: SqliteDirectory,
        passwords: CountingPasswords) -> None:
    secret = store.create(ALICE, "phone").secret
    read_only = sqlite3.connect(f"file:{tmp_path / 'mailstead.db'}?mode=ro", uri=True)
    verifier = AccountVerifier(directory, passwords, AppPasswordStore(read_only, passwords))
    assert verifier.verify(ALICE, secret)                  # "last used" could not be written
    assert store.list(ALICE)[0].last_used_at is None
