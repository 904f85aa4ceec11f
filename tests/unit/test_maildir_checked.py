"""MaildirAccount: a sync reuses the change check (`changed`) made a moment before in the
same `try_lock` hold -- the IMAP direct path's check, then the command's own sync (issue 4,
one check per command) -- and only there: the next look sees every change (RFC 9051 7)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from appliance.storage.mailbox_api import INBOX
from appliance.storage.maildir.account import MaildirAccount

BODY = b"Subject: x\n\nbody\n"


@pytest.fixture
def account(tmp_path: Path) -> MaildirAccount:
    mail = MaildirAccount("alice@example.test", tmp_path / "alice")
    mail.append(INBOX, BODY)
    return mail


def _drop(root: Path, index: int) -> None:
    """Another tool delivers into INBOX (a new file in new/, as a local MDA would)."""
    (root / "new" / f"1700000000.M{index}P1.othertool").write_bytes(BODY)


def _count(account: MaildirAccount) -> int:
    return len(account.sync(INBOX).messages)


def test_sync_in_the_same_hold_reuses_the_check(account: MaildirAccount,
                                                tmp_path: Path) -> None:
    assert account.try_lock()
    try:
        account.changed(INBOX, None)
        _drop(tmp_path / "alice", 1)    # lands between the check and the sync
        assert _count(account) == 1     # the check just made stands for this sync
        assert _count(account) == 2     # used once: the next sync looks again
    finally:
        account.unlock()


def test_the_next_hold_sees_the_change(account: MaildirAccount, tmp_path: Path) -> None:
    assert account.try_lock()
    account.changed(INBOX, None)
    account.unlock()                    # the hold ends: its check is dropped
    _drop(tmp_path / "alice", 1)
    assert account.try_lock()
    try:
        assert _count(account) == 2
    finally:
        account.unlock()


def test_a_plain_check_is_not_reused(account: MaildirAccount, tmp_path: Path) -> None:
    account.changed(INBOX, None)        # IDLE's poll, a worker thread: no try_lock hold
    _drop(tmp_path / "alice", 1)
    assert _count(account) == 2


def test_a_check_of_another_folder_is_not_reused(account: MaildirAccount,
                                                 tmp_path: Path) -> None:
    account.create_folder("Work")
    assert account.try_lock()
    try:
        account.changed("Work", None)
        _drop(tmp_path / "alice", 1)
        assert _count(account) == 2
    finally:
        account.unlock()


def test_our_own_change_drops_the_check(account: MaildirAccount) -> None:
    assert account.try_lock()
    try:
        account.changed(INBOX, None)
        account.append(INBOX, BODY)     # a write through this object in the same hold
        assert _count(account) == 2
    finally:
        account.unlock()


def test_another_thread_does_not_take_the_check(account: MaildirAccount,
                                                tmp_path: Path) -> None:
    assert account.try_lock()
    account.changed(INBOX, None)
    _drop(tmp_path / "alice", 1)
    counts: list[int] = []
    worker = threading.Thread(target=lambda: counts.append(_count(account)))
    worker.start()                      # waits for the lock
    account.unlock()
    worker.join(10)
    assert counts == [2]


def test_changed_still_reports_changes(account: MaildirAccount, tmp_path: Path) -> None:
    assert account.try_lock()
    try:
        changed, token = account.changed(INBOX, None)
        assert changed
        assert account.changed(INBOX, token) == (False, token)
        _drop(tmp_path / "alice", 1)
        changed, _new = account.changed(INBOX, token)
        assert changed
        assert _count(account) == 2     # the sync took the newer check
    finally:
        account.unlock()
