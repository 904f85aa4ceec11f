"""Vacation reply and forwarding as stored for the engine: validation, bounds, round trips,
and the once-per-sender claim of RFC 3834."""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

import pytest

from appliance.storage.account_settings import (
    DEFAULT_SUBJECT,
    MAX_BODY_LENGTH,
    MAX_FORWARD_TARGETS,
    MAX_SUBJECT_LENGTH,
    REPLY_INTERVAL_DAYS,
    AccountSettings,
    AccountSettingsError,
    Forwarding,
    Vacation,
)
from appliance.storage.directory import SqliteDirectory
from harness.account_db import database_with_account
from harness.clock import ManualClock

ALICE = "alice@example.test"
DAY = datetime.date


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return database_with_account(tmp_path, ALICE)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(conn: sqlite3.Connection, clock: ManualClock) -> AccountSettings:
    return AccountSettings(conn, clock)


# -- vacation ------------------------------------------------------------------------------

def test_vacation_is_off_until_set(store: AccountSettings) -> None:
    assert store.vacation(ALICE) == Vacation()
    assert not Vacation().active_on(DAY(2026, 1, 1))


def test_vacation_round_trip(store: AccountSettings) -> None:
    wanted = Vacation(True, " Away ", "Back on Monday.\r\nAlice\r\n", DAY(2026, 7, 1),
                      DAY(2026, 7, 14))
    stored = store.set_vacation("ALICE@example.test", wanted)
    assert stored == Vacation(True, "Away", "Back on Monday.\nAlice", DAY(2026, 7, 1),
                              DAY(2026, 7, 14))
    assert store.vacation(ALICE) == stored
    assert store.set_vacation(ALICE, Vacation(False, "", "")) == Vacation(False,
                                                                          DEFAULT_SUBJECT, "")
    assert store.vacation(ALICE) == Vacation(False, DEFAULT_SUBJECT, "")


@pytest.mark.parametrize(("day", "active"), [
    (DAY(2026, 6, 30), False), (DAY(2026, 7, 1), True), (DAY(2026, 7, 14), True),
    (DAY(2026, 7, 15), False)])
def test_vacation_dates_are_inclusive(day: datetime.date, active: bool) -> None:
    vacation = Vacation(True, "Away", "Gone", DAY(2026, 7, 1), DAY(2026, 7, 14))
    assert vacation.active_on(day) is active


def test_open_ended_vacation() -> None:
    assert Vacation(True, "Away", "Gone", None, None).active_on(DAY(1999, 1, 1))
    assert Vacation(True, "Away", "Gone", DAY(2026, 1, 1), None).active_on(DAY(2099, 1, 1))
    assert not Vacation(False, "Away", "Gone").active_on(DAY(2026, 1, 1))


@pytest.mark.parametrize(("vacation", "message"), [
    (Vacation(True, "x" * (MAX_SUBJECT_LENGTH + 1), "b"), "subject is too long"),
    (Vacation(True, "Away\r\nBcc: victim@example.org", "b"), "one line"),
    (Vacation(True, "Away\u2028Bcc: victim@example.org", "b"), "one line"),
    (Vacation(True, "Away\x85Bcc: victim@example.org", "b"), "one line"),
    (Vacation(True, "Away", "x" * (MAX_BODY_LENGTH + 1)), "message is too long"),
    (Vacation(True, "Away", "nul \x00 here"), "control characters"),
    (Vacation(True, "Away", "  \n "), "write the message"),
    (Vacation(True, "Away", "b", DAY(2026, 7, 2), DAY(2026, 7, 1)), "before the first day"),
])
def test_bad_vacations_are_refused(store: AccountSettings, vacation: Vacation,
                                   message: str) -> None:
    with pytest.raises(AccountSettingsError, match=message):
        store.set_vacation(ALICE, vacation)
    assert store.vacation(ALICE) == Vacation()


def test_unknown_account_is_refused(store: AccountSettings) -> None:
    with pytest.raises(AccountSettingsError, match="no such account"):
        store.set_vacation("nobody@example.test", Vacation())
    with pytest.raises(AccountSettingsError, match="no such account"):
        store.set_forwarding("nobody@example.test", Forwarding(("a@example.org",)))


def test_one_reply_per_sender_per_interval(store: AccountSettings, clock: ManualClock) -> None:
    store.set_vacation(ALICE, Vacation(True, "Away", "Gone"))
    assert store.claim_reply(ALICE, "bob@example.org")
    assert not store.claim_reply(ALICE, "BOB@Example.org")        # the same sender
    assert store.claim_reply(ALICE, "carol@example.org")
    clock.now += REPLY_INTERVAL_DAYS * 86400 - 1
    assert not store.claim_reply(ALICE, "bob@example.org")
    clock.now += 1
    assert store.claim_reply(ALICE, "bob@example.org")
    assert not store.claim_reply(ALICE, "bob@example.org")


def test_turning_vacation_off_forgets_whom_it_answered(store: AccountSettings) -> None:
    store.set_vacation(ALICE, Vacation(True, "Away", "Gone"))
    assert store.claim_reply(ALICE, "bob@example.org")
    store.set_vacation(ALICE, Vacation(False, "Away", "Gone"))
    store.set_vacation(ALICE, Vacation(True, "Away again", "Gone again"))
    assert store.claim_reply(ALICE, "bob@example.org")


# -- forwarding ----------------------------------------------------------------------------

def test_forwarding_round_trip(store: AccountSettings) -> None:
    assert store.forwarding(ALICE) == Forwarding()
    stored = store.set_forwarding(ALICE, Forwarding(
        ("bob@example.org", " Carol@Bücher.example ", "", "BOB@example.org"), keep_copy=False))
    assert stored == Forwarding(("bob@example.org", "Carol@xn--bcher-kva.example"), False)
    assert store.forwarding(ALICE) == stored
    assert store.set_forwarding(ALICE, Forwarding(("dave@example.org",))) == \
        Forwarding(("dave@example.org",), True)
    assert store.forwarding(ALICE) == Forwarding(("dave@example.org",), True)


def test_no_targets_means_mail_stays(store: AccountSettings) -> None:
    assert store.set_forwarding(ALICE, Forwarding((), keep_copy=False)) == Forwarding((), True)


@pytest.mark.parametrize(("targets", "message"), [
    (("not an address",), "not a mail address"),
    (("bob@example.org\r\nRCPT TO:<x@example.org>",), "not a mail address"),
    (("Alice@EXAMPLE.test",), "forward to other addresses"),
    (tuple(f"u{n}@example.org" for n in range(MAX_FORWARD_TARGETS + 1)),
     f"at most {MAX_FORWARD_TARGETS}"),
])
def test_bad_targets_are_refused(store: AccountSettings, targets: tuple[str, ...],
                                 message: str) -> None:
    store.set_forwarding(ALICE, Forwarding(("keep@example.org",)))
    with pytest.raises(AccountSettingsError, match=message):
        store.set_forwarding(ALICE, Forwarding(targets))
    assert store.forwarding(ALICE) == Forwarding(("keep@example.org",))


def test_deleting_the_account_deletes_its_settings(
        store: AccountSettings, conn: sqlite3.Connection) -> None:
    store.set_vacation(ALICE, Vacation(True, "Away", "Gone"))
    store.claim_reply(ALICE, "bob@example.org")
    store.set_forwarding(ALICE, Forwarding(("bob@example.org",)))
    SqliteDirectory(conn).remove_account(ALICE)
    for table in ("vacation", "vacation_replies", "forwarding", "forwarding_targets"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_old_reply_records_are_pruned(store: AccountSettings, clock: ManualClock,
                                      conn: sqlite3.Connection) -> None:
    store.set_vacation(ALICE, Vacation(True, "Away", "Gone"))
    for n in range(5):
        assert store.claim_reply(ALICE, f"sender{n}@example.org")
    clock.now += REPLY_INTERVAL_DAYS * 86400
    assert store.claim_reply(ALICE, "late@example.org")
    rows = conn.execute("SELECT sender FROM vacation_replies").fetchall()
    assert [r[0] for r in rows] == ["late@example.org"]
    assert store.claim_reply(ALICE, "sender0@example.org")       # answered again
