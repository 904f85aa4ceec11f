"""Maildir <-> index reconciliation: Maildirs made by hand and changed by other tools, index
rebuilds, two openers of one Maildir (as two processes), and the no-change fast path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.storage.interfaces import Mailbox
from appliance.storage.mailbox_api import INBOX, FlagOperation
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.index import INDEX_NAME
from appliance.storage.maildir.store import MaildirStore

BODY = b"Subject: by hand\n\nhello\n"


def make_maildir(root: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def put(root: Path, sub: str, name: str, mtime: float, data: bytes = BODY) -> Path:
    path = root / sub / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def cur_names(root: Path) -> list[str]:
    return sorted(os.listdir(root / "cur"))


def by_uid(account: MaildirAccount, folder: str = INBOX) -> dict[int, frozenset[str]]:
    return {m.uid: m.flags for m in account.sync(folder).messages}


def settle() -> None:
    """Wait past the window in which a directory's mtime is not trusted (sync.DIRTY_WINDOW)."""
    time.sleep(0.15)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "alice"
    make_maildir(path)
    return path


def test_hand_made_maildir_is_indexed(root: Path) -> None:
    put(root, "new", "1003.a.host", 1003)
    put(root, "new", "1001.b.host,S=24", 1001)
    put(root, "cur", "1002.c.host:2,FS", 1002)
    put(root, "cur", "1000.d.host:2,", 1000)
    put(root, "cur", "1004.e.host", 1004, BODY.replace(b"\n", b"\r\n"))
    put(root, "cur", "1004.e.host:2,T", 1004, BODY)   # a second file of one message: one UID
    (root / "cur" / ".hidden").write_bytes(b"x")
    account = MaildirAccount("alice@example.test", root)
    snapshot = account.sync(INBOX)
    assert [(m.uid, m.internal_date) for m in snapshot.messages] == [
        (1, 1000), (2, 1001), (3, 1002), (4, 1003), (5, 1004)]
    assert snapshot.messages[2].flags == {"\\Flagged", "\\Seen"}
    assert all(m.size == len(BODY) + BODY.count(b"\n") for m in snapshot.messages)
    assert os.listdir(root / "new") == []
    assert "1003.a.host:2," in cur_names(root)
    assert "1001.b.host,S=24:2," in cur_names(root)
    assert account.read(INBOX, 5) == BODY.replace(b"\n", b"\r\n")
    account.close()


def test_other_tools_add_remove_and_rename(root: Path) -> None:
    put(root, "cur", "1.x.host:2,S", 1)
    put(root, "cur", "2.x.host:2,", 2)
    account = MaildirAccount("alice@example.test", root)
    first = account.sync(INBOX)
    assert by_uid(account) == {1: {"\\Seen"}, 2: frozenset()}
    settle()
    put(root, "new", "3.x.host", 3)
    os.rename(root / "cur" / "1.x.host:2,S", root / "cur" / "1.x.host:2,RS")
    os.unlink(root / "cur" / "2.x.host:2,")
    second = account.sync(INBOX)
    assert by_uid(account) == {1: {"\\Seen", "\\Answered"}, 3: frozenset()}
    assert second.uidvalidity == first.uidvalidity
    assert second.highest_modseq > first.highest_modseq
    assert second.messages[0].modseq == second.highest_modseq
    assert account.expunged_since(INBOX, first.highest_modseq) == [2]
    account.close()


def test_read_follows_a_file_renamed_behind_our_back(root: Path) -> None:
    put(root, "cur", "1.x.host:2,", 1)
    account = MaildirAccount("alice@example.test", root)
    account.sync(INBOX)
    os.rename(root / "cur" / "1.x.host:2,", root / "cur" / "1.x.host:2,F")
    assert account.read(INBOX, 1) == BODY.replace(b"\n", b"\r\n")
    assert by_uid(account) == {1: {"\\Flagged"}}
    account.close()


def test_flags_and_keywords_on_disk(root: Path) -> None:
    (root / "dovecot-keywords").write_text("0 $Forwarded\n1 Junk\n")
    put(root, "cur", "1.x.host:2,Sb", 1)
    account = MaildirAccount("alice@example.test", root)
    assert by_uid(account) == {1: {"\\Seen", "Junk"}}
    account.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"$Forwarded", "\\Draft",
                                                                 "work"}))
    assert account.wait_renames(10)           # the rename follows the STORE (`dirty`)
    assert cur_names(root) == ["1.x.host:2,DSabc"]
    assert (root / "dovecot-keywords").read_text() == "0 $Forwarded\n1 Junk\n2 work\n"
    account.store_flags(INBOX, [1], FlagOperation.REPLACE, frozenset({"\\Deleted"}))
    assert account.wait_renames(10)
    assert cur_names(root) == ["1.x.host:2,T"]
    account.close()


def test_keywords_beyond_26_live_in_the_index(root: Path) -> None:
    account = MaildirAccount("alice@example.test", root)
    many = frozenset(f"k{i:02d}" for i in range(30))
    account.append(INBOX, BODY, many | {"\\Seen"})
    [name] = cur_names(root)
    assert name.endswith(":2,S" + "abcdefghijklmnopqrstuvwxyz")
    settle()
    os.rename(root / "cur" / name, root / "cur" / name.replace(":2,S", ":2,FS"))
    assert by_uid(account) == {1: many | {"\\Seen", "\\Flagged"}}
    account.close()


def test_delivery_is_picked_up_with_its_sizes(tmp_path: Path) -> None:
    box = Mailbox(1, "alice@example.test", Path("mail/example.test/alice"))
    MaildirStore(tmp_path).deliver(BODY, [box])
    account = MaildirAccount("alice@example.test", tmp_path / box.maildir)
    [meta] = account.sync(INBOX).messages
    [name] = cur_names(tmp_path / box.maildir)
    crlf = len(BODY.replace(b"\n", b"\r\n"))
    assert f",S={len(BODY)},W={crlf}:2," in name
    assert meta.size == crlf
    assert meta.internal_date == pytest.approx(time.time(), abs=60)
    account.close()


def test_deleted_index_is_rebuilt(root: Path) -> None:
    account = MaildirAccount("alice@example.test", root)
    for flags in (frozenset({"\\Seen"}), frozenset({"urgent"}), frozenset()):
        account.append(INBOX, BODY, flags)
    account.create_folder("Kept")
    account.append("Kept", BODY)
    old = account.sync(INBOX)
    account.close()
    for leftover in root.glob(INDEX_NAME + "*"):
        leftover.unlink()
    again = MaildirAccount("alice@example.test", root)
    new = again.sync(INBOX)
    assert new.uidvalidity != old.uidvalidity
    assert [m.flags for m in new.messages] == [m.flags for m in old.messages]
    assert again.read(INBOX, 1) == BODY.replace(b"\n", b"\r\n")
    assert len(again.sync("Kept").messages) == 1
    again.close()


def test_corrupt_index_is_rebuilt(root: Path) -> None:
    account = MaildirAccount("alice@example.test", root)
    account.append(INBOX, BODY, frozenset({"\\Answered"}))
    account.close()
    (root / INDEX_NAME).write_bytes(os.urandom(8192))
    again = MaildirAccount("alice@example.test", root)
    assert by_uid(again) == {1: {"\\Answered"}}
    assert (root / (INDEX_NAME + ".broken")).exists()
    again.append(INBOX, BODY)
    assert len(again.sync(INBOX).messages) == 2
    again.close()


def test_wrong_version_index_is_rebuilt_keeping_uids(root: Path) -> None:
    account = MaildirAccount("alice@example.test", root)
    for _ in range(3):
        account.append(INBOX, BODY)
    account.remove(INBOX, [1])
    old = account.sync(INBOX)
    account.close()
    conn = sqlite3.connect(root / INDEX_NAME)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    again = MaildirAccount("alice@example.test", root)
    new = again.sync(INBOX)
    assert (new.uidvalidity, [m.uid for m in new.messages]) == (old.uidvalidity, [2, 3])
    assert again.append(INBOX, BODY).target_uids == (4,)
    again.close()


def test_two_openers_see_each_others_changes(root: Path) -> None:
    one = MaildirAccount("alice@example.test", root)
    two = MaildirAccount("alice@example.test", root)
    one.append(INBOX, BODY)
    assert by_uid(two) == {1: frozenset()}
    two.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"\\Seen"}))
    assert by_uid(one) == {1: {"\\Seen"}}
    many = frozenset(f"k{i:02d}" for i in range(30))
    settle()
    one.sync(INBOX)
    two.sync(INBOX)
    # k26.. have no letter: only the index changes; data_version tells the other opener.
    one.store_flags(INBOX, [1], FlagOperation.ADD, many)
    assert by_uid(two) == {1: many | {"\\Seen"}}
    two.create_folder("Shared")
    one.append("Shared", BODY)
    assert [m.uid for m in two.sync("Shared").messages] == [1]
    one.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"\\Deleted"}))
    assert one.expunge(INBOX) == [1]
    assert two.sync(INBOX).messages == ()
    assert two.append(INBOX, BODY).target_uids == (2,)
    one.close()
    two.close()


def test_concurrent_syncs_give_each_file_one_uid(root: Path) -> None:
    for i in range(200):
        put(root, "new", f"{i}.x.host", 1000 + i)
    openers = [MaildirAccount("alice@example.test", root) for _ in range(4)]
    results: list[list[int]] = []

    def run(account: MaildirAccount) -> None:
        results.append([m.uid for m in account.sync(INBOX).messages])

    threads = [threading.Thread(target=run, args=(a,)) for a in openers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [list(range(1, 201))] * 4
    for account in openers:
        account.close()


def test_ten_thousand_messages_no_change_sync(root: Path) -> None:
    for i in range(10_000):
        name = f"{1_700_000_000 + i}.M{i}P1.host,S={len(BODY)},W={len(BODY) + 3}:2,S"
        (root / "cur" / name).write_bytes(BODY)
    account = MaildirAccount("alice@example.test", root)
    started = time.perf_counter()
    snapshot = account.sync(INBOX)
    first = time.perf_counter() - started
    assert len(snapshot.messages) == 10_000
    settle()
    started = time.perf_counter()
    account.sync(INBOX)          # lists once more: the first listing's stamp was too fresh
    relist = time.perf_counter() - started
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        again = account.sync(INBOX)
        timings.append(time.perf_counter() - started)
    assert again.messages is account.sync(INBOX).messages     # served from the cache
    started = time.perf_counter()
    status = account.status(INBOX)
    status_time = time.perf_counter() - started
    assert status.messages == 10_000
    assert status.unseen == 0
    print(f"\n10k folder: first sync {first * 1000:.1f} ms, listing {relist * 1000:.1f} ms, "
          f"no-change sync {min(timings) * 1e6:.0f} us (max {max(timings) * 1e6:.0f} us), "
          f"status {status_time * 1000:.2f} ms")
    account.close()


APPENDER = """
import sys
from pathlib import Path
from appliance.storage.maildir.account import MaildirAccount
account = MaildirAccount("alice@example.test", Path(sys.argv[1]))
for i in range(40):
    account.append("INBOX", b"Subject: %d\\n\\n" % i)
    account.sync("INBOX")
account.close()
"""


def test_two_processes_append_and_sync_at_once(root: Path) -> None:
    MaildirAccount("alice@example.test", root).close()
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(root)]) for _ in range(2)]
    box = Mailbox(1, "alice@example.test", Path("alice"))
    for i in range(20):                      # SMTP delivery at the same time
        MaildirStore(root.parent).deliver(b"Subject: delivered %d\n\n" % i, [box])
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    account = MaildirAccount("alice@example.test", root)
    snapshot = account.sync(INBOX)
    assert [m.uid for m in snapshot.messages] == list(range(1, 101))
    assert len(os.listdir(root / "cur")) == 100
    account.close()
