"""A user's vacation reply and forwarding, stored in mailstead.db for the engine to apply.

The console's self-service pages write them; the engine applies them: the vacation reply in
the delivery pipeline (`pipeline/vacation.py`), forwarding when the directory expands a
recipient (`storage/directory.py`). Everything a user types is bounded and checked here, so no
other writer can store what the engine would trip over: the subject goes into a header and
must be one line, forwarding targets are addresses and never the account itself.
"""

from __future__ import annotations

import datetime
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.core.addresses import AddressError, parse_address
from appliance.storage.app_passwords import account_id
from appliance.storage.db import immediate_transaction

MAX_SUBJECT_LENGTH = 200
MAX_BODY_LENGTH = 10_000
MAX_FORWARD_TARGETS = 10
DEFAULT_SUBJECT = "Out of office"
# RFC 3834 section 2: a responder sends at most one reply to a sender in a period; 7 days is
# the RFC's suggested floor for "vacation"-style responders (section 4.3).
REPLY_INTERVAL_DAYS = 7


class AccountSettingsError(ValueError):
    """A value the user gave cannot be stored; the message says what to change."""


@dataclass(frozen=True)
class Vacation:
    """The automatic reply: sent while `enabled` and today is within [start, end]."""

    enabled: bool = False
    subject: str = DEFAULT_SUBJECT
    body: str = ""
    start: datetime.date | None = None
    end: datetime.date | None = None

    def active_on(self, day: datetime.date) -> bool:
        """Whether a message arriving on `day` gets the reply."""
        return (self.enabled and (self.start is None or self.start <= day)
                and (self.end is None or day <= self.end))


@dataclass(frozen=True)
class Forwarding:
    """Where the account's mail also (or only) goes. No targets means no forwarding."""

    targets: tuple[str, ...] = ()
    keep_copy: bool = True


def check_vacation(vacation: Vacation) -> Vacation:
    """`vacation` with its text tidied, or AccountSettingsError naming what is wrong."""
    subject = vacation.subject.strip() or DEFAULT_SUBJECT
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise AccountSettingsError(f"the subject is too long: at most {MAX_SUBJECT_LENGTH} "
                                   "characters")
    # It becomes a header field: no control characters, and nothing Python's email package
    # (str.splitlines) takes for a line break, such as U+2028 or U+0085.
    if len(subject.splitlines()) != 1 or any(unicodedata.category(c) == "Cc" for c in subject):
        raise AccountSettingsError("the subject must be one line of text")
    body = vacation.body.replace("\r\n", "\n").strip("\n")
    if len(body) > MAX_BODY_LENGTH:
        raise AccountSettingsError(f"the message is too long: at most {MAX_BODY_LENGTH} "
                                   "characters")
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in body):
        raise AccountSettingsError("the message contains control characters")
    if vacation.enabled and not body.strip():
        raise AccountSettingsError("write the message to send before turning the reply on")
    if vacation.start and vacation.end and vacation.end < vacation.start:
        raise AccountSettingsError("the last day is before the first day")
    return Vacation(vacation.enabled, subject, body, vacation.start, vacation.end)


def check_forward_targets(account: str, targets: Iterable[str]) -> tuple[str, ...]:
    """The targets as normalised addresses without duplicates, or AccountSettingsError.

    The account itself is refused: forwarding to oneself is "keep a copy", and as a target
    it would loop.
    """
    own = parse_address(account).key
    seen: dict[str, str] = {}
    for text in targets:
        if not text.strip():
            continue
        try:
            address = parse_address(text.strip())
        except AddressError as exc:
            raise AccountSettingsError(f"not a mail address: {text.strip()[:100]}") from exc
        if address.key == own:
            raise AccountSettingsError("forward to other addresses; to keep mail here, "
                                       "tick 'keep a copy'")
        seen.setdefault(address.key, str(address))
    if len(seen) > MAX_FORWARD_TARGETS:
        raise AccountSettingsError(f"at most {MAX_FORWARD_TARGETS} forwarding addresses")
    return tuple(seen.values())


class AccountSettings:
    """Vacation and forwarding of every account, in mailstead.db."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._now = clock

    # -- vacation ----------------------------------------------------------------------------

    def vacation(self, address: str) -> Vacation:
        """The stored vacation reply of `address` (the default, off, when none)."""
        row = self._conn.execute(
            "SELECT enabled, subject, body, start_date, end_date FROM vacation "
            "WHERE account_id = ?", (account_id(self._conn, address),)).fetchone()
        if row is None:
            return Vacation()
        return Vacation(bool(row[0]), str(row[1]), str(row[2]), _date(row[3]), _date(row[4]))

    def set_vacation(self, address: str, vacation: Vacation) -> Vacation:
        """Check and store `vacation` for `address`; return what was stored.

        Raises:
            AccountSettingsError: a bad value, or no such account.
        """
        checked = check_vacation(vacation)
        owner = self._owner(address)
        self._conn.execute(
            "INSERT INTO vacation (account_id, enabled, subject, body, start_date, end_date, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET "
            "enabled = excluded.enabled, subject = excluded.subject, body = excluded.body, "
            "start_date = excluded.start_date, end_date = excluded.end_date, "
            "updated_at = excluded.updated_at",
            (owner, int(checked.enabled), checked.subject, checked.body,
             _iso(checked.start), _iso(checked.end), int(self._now())))
        if not checked.enabled:      # a new absence answers everyone once again
            self._conn.execute("DELETE FROM vacation_replies WHERE account_id = ?", (owner,))
        return checked

    def accounts_with_vacation(self) -> frozenset[str]:
        """`Address.key` of every account whose vacation reply is turned on (dates aside):
        the engine skips the others without a query per message."""
        rows = self._conn.execute(
            "SELECT a.local_key, d.name FROM vacation v JOIN accounts a ON a.id = v.account_id "
            "JOIN domains d ON d.id = a.domain_id WHERE v.enabled = 1")
        return frozenset(f"{r[0]}@{r[1]}" for r in rows)

    def claim_reply(self, address: str, sender: str,
                    interval_days: int = REPLY_INTERVAL_DAYS) -> bool:
        """Whether the engine may answer `sender` now (RFC 3834 2: at most once per
        `interval_days`); True also records the reply, so two deliveries cannot both send."""
        owner = self._owner(address)
        now = int(self._now())
        key = parse_address(sender).key
        # Rows past the interval decide nothing any more: the table stays as small as the
        # number of people who wrote in the last `interval_days`.
        self._conn.execute("DELETE FROM vacation_replies WHERE account_id = ? AND "
                           "replied_at <= ? AND sender != ?",
                           (owner, now - interval_days * 86400, key))
        cursor = self._conn.execute(
            "INSERT INTO vacation_replies (account_id, sender, replied_at) VALUES (?, ?, ?) "
            "ON CONFLICT (account_id, sender) DO UPDATE SET replied_at = excluded.replied_at "
            "WHERE vacation_replies.replied_at <= ?",
            (owner, key, now, now - interval_days * 86400))
        return int(cursor.rowcount) == 1

    # -- forwarding --------------------------------------------------------------------------

    def forwarding(self, address: str) -> Forwarding:
        """The stored forwarding of `address` (none when never set)."""
        owner = account_id(self._conn, address)
        row = self._conn.execute("SELECT keep_copy FROM forwarding WHERE account_id = ?",
                                 (owner,)).fetchone()
        if row is None:
            return Forwarding()
        targets = self._conn.execute(
            "SELECT target FROM forwarding_targets WHERE account_id = ? ORDER BY rowid",
            (owner,))
        return Forwarding(tuple(str(t[0]) for t in targets), bool(row[0]))

    def set_forwarding(self, address: str, forwarding: Forwarding) -> Forwarding:
        """Check and store `forwarding` for `address` (in one transaction); return it.

        Raises:
            AccountSettingsError: a bad target, too many, or no such account.
        """
        targets = check_forward_targets(address, forwarding.targets)
        checked = Forwarding(targets, forwarding.keep_copy or not targets)
        with immediate_transaction(self._conn):
            owner = self._owner(address)
            self._conn.execute("DELETE FROM forwarding WHERE account_id = ?", (owner,))
            self._conn.execute(
                "INSERT INTO forwarding (account_id, keep_copy, updated_at) VALUES (?, ?, ?)",
                (owner, int(checked.keep_copy), int(self._now())))
            self._conn.executemany(
                "INSERT INTO forwarding_targets (account_id, target) VALUES (?, ?)",
                [(owner, t) for t in targets])
        return checked

    def _owner(self, address: str) -> int:
        owner = account_id(self._conn, address)
        if owner is None:
            raise AccountSettingsError(f"no such account: {address}")
        return owner


def _date(text: object) -> datetime.date | None:
    return datetime.date.fromisoformat(str(text)) if text else None


def _iso(day: datetime.date | None) -> str | None:
    return day.isoformat() if day is not None else None
