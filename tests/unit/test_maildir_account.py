"""MaildirStores (accounts opened by address) and MaildirAccount details beyond the contract:
quota from the directory, the lock file, durable renames and the delivery usage figure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.core import fsio
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.mailbox_api import INBOX, FlagOperation, FolderInUseError, OverQuotaError
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.stores import MaildirStores

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
BODY = b"Subject: x\n\nbody\n"


@pytest.fixture
def directory(tmp_path: Path) -> SqliteDirectory:
    d = SqliteDirectory(open_database(tmp_path))
    d.add_domain("example.test")
    d.add_account("alice@example.test", HASH, quota_bytes=100)
    d.add_account("bob@example.test", HASH)
    return d


def test_stores_open_one_account_object_per_account(tmp_path: Path,
                                                    directory: SqliteDirectory) -> None:
    stores = MaildirStores(tmp_path, directory, messages_limit=50)
    alice = stores.open("alice@example.test")
    assert stores.open("Alice@Example.TEST") is alice
    assert alice.address == "alice@example.test"
    assert (tmp_path / "mail" / "example.test" / "alice" / "cur").is_dir()
    assert (tmp_path / "mail" / "example.test" / "alice" / ".Junk" / "maildirfolder").exists()
    usage = alice.quota()
    assert (usage.storage_limit, usage.messages_limit) == (100, 50)
    bob = stores.open("bob@example.test")
    assert bob.quota().storage_limit is None
    assert sorted(a.address for a in stores.iter_open()) == ["alice@example.test",
                                                            "bob@example.test"]
    for missing in ("carol@example.test", "nobody@elsewhere.test", "not an address"):
        with pytest.raises(KeyError):
            stores.open(missing)
    stores.close()


def test_quota_change_in_directory_applies_on_next_open(tmp_path: Path,
                                                        directory: SqliteDirectory) -> None:
    stores = MaildirStores(tmp_path, directory)
    alice = stores.open("alice@example.test")
    alice.append(INBOX, BODY)
    with pytest.raises(OverQuotaError):
        alice.append(INBOX, BODY * 10)
    directory.set_quota("alice@example.test", 0)
    stores.open("alice@example.test").append(INBOX, BODY * 10)
    assert alice.usage_for_delivery() == (alice.quota().storage_used, 2)
    stores.close()


def test_exclusive_is_a_lock_file_in_the_maildir(tmp_path: Path) -> None:
    root = tmp_path / "alice"
    account = MaildirAccount("alice@example.test", root)
    with account.exclusive("pop3"):
        assert (root / "mailstead-pop3.lock").exists()
        with pytest.raises(FolderInUseError), account.exclusive("pop3"):
            pass
    with account.exclusive("pop3"):
        pass
    account.close()


def test_writes_fsync_the_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = MaildirAccount("alice@example.test", tmp_path / "alice")
    synced: list[Path] = []
    real = fsio.DIRECTORY_SYNC.sync

    def record(directory: Path) -> None:
        synced.append(directory)
        real(directory)

    monkeypatch.setattr(fsio.DIRECTORY_SYNC, "sync", record)
    cur = tmp_path / "alice" / "cur"
    account.append(INBOX, BODY)
    assert synced == [cur]
    account.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"\\Seen"}))
    account.copy(INBOX, [1], "Archive")
    account.remove(INBOX, [1])
    assert synced == [cur, cur, tmp_path / "alice" / ".Archive" / "cur", cur]
    assert os.listdir(cur) == []
    account.close()


def test_failed_append_leaves_no_file(tmp_path: Path) -> None:
    account = MaildirAccount("alice@example.test", tmp_path / "alice", messages_limit=0)
    with pytest.raises(OverQuotaError):
        account.append(INBOX, BODY)
    for sub in ("tmp", "cur", "new"):
        assert os.listdir(tmp_path / "alice" / sub) == []
    account.close()


def test_move_removes_sources_only_after_targets_are_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = MaildirAccount("alice@example.test", tmp_path / "alice")
    account.append(INBOX, BODY)
    [source] = (tmp_path / "alice" / "cur").iterdir()
    events: list[tuple[str, bool]] = []
    real = fsio.DIRECTORY_SYNC.sync

    def record(directory: Path) -> None:
        events.append((directory.parent.name, source.exists()))
        real(directory)

    monkeypatch.setattr(fsio.DIRECTORY_SYNC, "sync", record)
    result = account.move(INBOX, [1], "Archive")
    assert result.target_uids == (1,)
    assert events == [(".Archive", True), ("alice", False)]
    account.close()


def test_junk_move_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    account = MaildirAccount("alice@example.test", tmp_path / "alice")
    account.append(INBOX, BODY)
    with caplog.at_level("INFO", logger="mailstead"):
        account.move(INBOX, [1], "Junk")
    [record] = [r for r in caplog.records if r.getMessage() == "mailbox.junk_move"]
    assert record.__dict__["to_junk"] is True
    assert record.__dict__["count"] == 1
    account.close()


def test_half_deleted_folder_is_cleaned_up(tmp_path: Path) -> None:
    root = tmp_path / "alice"
    account = MaildirAccount("alice@example.test", root)
    account.close()
    (root / "mailstead-deleted.123" / "cur").mkdir(parents=True)
    (root / "tmp" / "staged-by-a-crashed-append").write_bytes(BODY)
    again = MaildirAccount("alice@example.test", root)
    assert not (root / "mailstead-deleted.123").exists()
    assert again.sync(INBOX).messages == ()
    again.close()
