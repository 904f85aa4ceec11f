"""Our own writes keep the folder's stamp trusted (no relisting of the whole folder after a
STORE, APPEND, COPY or EXPUNGE), yet every change another writer makes right after them (in
the same clock tick) is still seen: tools renaming and adding files, and SMTP delivery.

`FolderState.stamp` is looked at directly: it is what decides whether the next sync lists
the folder (None: it lists). Kernels since 6.13 give a change right after a stat a
fine-grained mtime, so the coarse-clock race cannot happen by itself on this test machine;
`coarse_tick` puts the directory's mtime where an older kernel (Debian 12's 6.1) would: on
the tick of our own last change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.storage.interfaces import Mailbox
from appliance.storage.mailbox_api import INBOX, FlagOperation
from appliance.storage.maildir import sync
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.store import MaildirStore

BODY = b"Subject: own writes\n\nhello\n"
FLAGGED = frozenset({"\\Flagged"})


@pytest.fixture
def account(tmp_path: Path) -> MaildirAccount:
    mail = MaildirAccount("alice@example.test", tmp_path / "alice")
    for _ in range(20):
        mail.append(INBOX, BODY)
    time.sleep(sync.DIRTY_WINDOW * 1.5)
    mail.sync(INBOX)
    return mail


def stamp(account: MaildirAccount, folder: str = INBOX) -> sync.Stamp | None:
    return account._states[folder].stamp


def coarse_tick(directory: Path, mark: int) -> None:
    """Stamp `directory` as a coarse clock does when a tool's change falls into the tick of
    our own last change: with that tick (the mark is one nanosecond past it)."""
    os.utime(directory, ns=(os.stat(directory).st_atime_ns, mark - 1))


def flags_of(account: MaildirAccount) -> dict[int, frozenset[str]]:
    return {m.uid: m.flags for m in account.sync(INBOX).messages}


def test_store_keeps_a_trusted_stamp_and_sync_needs_no_listing(account: MaildirAccount) -> None:
    root = account._root
    before = stamp(account)
    assert before is not None
    account.store_flags(INBOX, range(1, 11), FlagOperation.ADD, FLAGGED)
    assert account.wait_renames(10)              # the renames follow in the background
    after = stamp(account)
    assert after is not None
    assert after != before
    assert after == sync.stamp_of(root)          # the job's mark is what the disk shows now
    snapshot = account.sync(INBOX)
    assert stamp(account) == after               # the fast path: nothing listed again
    assert [m.uid for m in snapshot.messages if "\\Flagged" in m.flags] == list(range(1, 11))
    names = sorted(os.listdir(root / "cur"))
    assert sum(name.endswith(":2,F") for name in names) == 10
    account.close()


def test_append_copy_expunge_keep_the_stamp(account: MaildirAccount) -> None:
    account.append(INBOX, BODY)
    assert stamp(account) is not None
    account.create_folder("Archive/2026")
    account.sync("Archive/2026")
    time.sleep(sync.DIRTY_WINDOW * 1.5)
    account.sync("Archive/2026")
    account.copy(INBOX, [1, 2], "Archive/2026")
    assert stamp(account) is not None
    assert stamp(account, "Archive/2026") is not None
    account.store_flags(INBOX, [3], FlagOperation.ADD, frozenset({"\\Deleted"}))
    assert account.expunge(INBOX) == [3]
    assert stamp(account) is not None
    assert len(account.sync(INBOX).messages) == 20
    assert len(account.sync("Archive/2026").messages) == 2
    account.close()


@pytest.mark.parametrize("coarse", [False, True])
def test_tool_rename_right_after_our_store_is_seen(account: MaildirAccount, coarse: bool) -> None:
    """The tool renames within the same tick as our STORE's renames (made in the background
    right after it: a tool renaming *during* a batch of them is the gap sync's docstring
    names, so the test waits for them)."""
    root = account._root
    account.store_flags(INBOX, [1], FlagOperation.ADD, FLAGGED)
    assert account.wait_renames(10)
    own = stamp(account)
    assert own is not None
    victim = next(n for n in os.listdir(root / "cur") if n.endswith(":2,"))
    os.rename(root / "cur" / victim, root / "cur" / (victim + "S"))
    if coarse:
        coarse_tick(root / "cur", own[1])
    flags = flags_of(account)
    assert flags[1] == FLAGGED
    assert sum("\\Seen" in f for f in flags.values()) == 1
    account.close()


@pytest.mark.parametrize("coarse", [False, True])
def test_tool_add_and_remove_right_after_our_append_are_seen(account: MaildirAccount,
                                                             coarse: bool) -> None:
    root = account._root
    account.append(INBOX, BODY)
    own = stamp(account)
    assert own is not None
    (root / "cur" / f"{int(time.time())}.tool.host:2,S").write_bytes(BODY)
    gone = sorted(os.listdir(root / "cur"))[0]
    os.unlink(root / "cur" / gone)
    if coarse:
        coarse_tick(root / "cur", own[1])
    snapshot = account.sync(INBOX)
    assert len(snapshot.messages) == 21           # 20 + ours + the tool's - the removed one
    assert snapshot.messages[-1].uid == 22
    assert snapshot.messages[-1].flags == {"\\Seen"}
    account.close()


def test_delivery_right_after_our_store_is_seen(account: MaildirAccount) -> None:
    root = account._root
    box = Mailbox(1, account.address, Path(root.name))
    for i in range(5):
        account.store_flags(INBOX, [1], FlagOperation.REPLACE, FLAGGED if i % 2 else frozenset())
        MaildirStore(root.parent).deliver(b"Subject: %d\n\nx\n" % i, [box])
        assert len(account.sync(INBOX).messages) == 21 + i
    account.close()


def test_listing_marks_a_fresh_folder_so_the_next_sync_is_fast(account: MaildirAccount) -> None:
    """A delivery makes new/ and cur/ fresh; the listing that takes it marks them, so the
    sync after it needs no second listing, and a tool's rename right after is still seen."""
    root = account._root
    box = Mailbox(1, account.address, Path(root.name))
    MaildirStore(root.parent).deliver(b"Subject: new\n\nx\n", [box])
    assert len(account.sync(INBOX).messages) == 21
    trusted = stamp(account)
    assert trusted is not None
    assert account.sync(INBOX) is not None
    assert stamp(account) == trusted
    name = sorted(os.listdir(root / "cur"))[0]
    os.rename(root / "cur" / name, root / "cur" / (name + "T"))
    coarse_tick(root / "cur", trusted[1])
    assert sum("\\Deleted" in f for f in flags_of(account).values()) == 1
    account.close()


def test_second_opener_sees_our_writes_whatever_the_stamp(account: MaildirAccount) -> None:
    other = MaildirAccount(account.address, account._root)
    assert len(other.sync(INBOX).messages) == 20
    for i in range(5):
        account.store_flags(INBOX, [i + 1], FlagOperation.ADD, FLAGGED)
        assert sum("\\Flagged" in m.flags for m in other.sync(INBOX).messages) == 2 * i + 1
        other.store_flags(INBOX, [i + 10], FlagOperation.ADD, FLAGGED)
        assert sum("\\Flagged" in m.flags for m in account.sync(INBOX).messages) == 2 * i + 2
    other.close()
    account.close()


def test_mark_reads_back_or_gives_none(tmp_path: Path) -> None:
    before = os.stat(tmp_path).st_mtime_ns
    mark = sync.mark_directory(os.fspath(tmp_path))
    assert mark == before + 1 == os.stat(tmp_path).st_mtime_ns
    (tmp_path / "x").write_bytes(b"")             # any change moves the mtime off the mark
    assert os.stat(tmp_path).st_mtime_ns != mark
