"""`MaildirAccount.read_many` (FETCH of whole messages): one look-up of the files per batch,
and the messages still found when their files are renamed under the batch -- by the
deferred flag renames (`dirty`) or by another tool -- or expunged meanwhile."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.storage.mailbox_api import INBOX, FlagOperation
from appliance.storage.maildir import account as account_module
from appliance.storage.maildir import cache, sync
from appliance.storage.maildir.account import MaildirAccount

BODY = b"Subject: many\n\nhello\n"


@pytest.fixture
def account(tmp_path: Path) -> MaildirAccount:
    mail = MaildirAccount("alice@example.test", tmp_path / "alice")
    for i in range(6):
        mail.append(INBOX, BODY + b"%d\n" % i)
    time.sleep(sync.DIRTY_WINDOW * 1.5)
    mail.sync(INBOX)
    return mail


def expected(i: int) -> bytes:
    return (BODY + b"%d\n" % i).replace(b"\n", b"\r\n")


def test_files_still_under_their_old_names_are_read(account: MaildirAccount) -> None:
    with account._lock:                      # the deferred renames wait for the lock
        account.store_flags(INBOX, [1, 2, 3], FlagOperation.ADD, frozenset({"\\Seen"}))
        assert all(":2,S" not in name for name in os.listdir(account._root / "cur"))
        read = dict(account.read_many(INBOX, [1, 2, 3, 4]))
    assert read == {uid: expected(uid - 1) for uid in (1, 2, 3, 4)}
    account.close()


def test_a_file_a_tool_renames_after_the_look_up_is_found_again(
        account: MaildirAccount) -> None:
    cur = account._root / "cur"
    reading = account.read_many(INBOX, [1, 2, 3])
    assert next(reading) == (1, expected(0))            # the batch's files are looked up
    second = sorted(os.listdir(cur))[1]
    os.rename(cur / second, cur / (second.partition(":")[0] + ":2,FS"))    # a tool's STORE
    assert next(reading) == (2, expected(1))
    assert next(reading) == (3, expected(2))
    account.close()


def test_a_message_expunged_after_the_look_up_is_none(account: MaildirAccount) -> None:
    cur = account._root / "cur"
    reading = account.read_many(INBOX, [1, 2])
    assert next(reading) == (1, expected(0))
    os.unlink(cur / sorted(os.listdir(cur))[1])          # another tool removed it
    assert next(reading) == (2, None)
    account.close()


def test_one_look_up_per_batch(account: MaildirAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_module, "READ_BATCH", 4)
    looked_up: list[int] = []
    paths_of = cache.paths_of

    def counting(state: sync.FolderState, uids: list[int]) -> dict[int, tuple[str, ...]]:
        looked_up.append(len(uids))
        return paths_of(state, uids)

    monkeypatch.setattr(cache, "paths_of", counting)
    read = list(account.read_many(INBOX, [1, 2, 3, 4, 5, 6]))
    assert [content for _, content in read] == [expected(i) for i in range(6)]
    assert looked_up == [4, 2]
    account.close()
