"""Deferred flag renames (`storage/maildir/dirty.py`): a STORE commits rows marked with the
name their file has now; the renames follow in the background. Readers find a file under
either name, a sync or a write completes the renames (without reporting a flag change), a
file a tool renamed to a third name is merged, a crash's marks are completed on open, and
an index of version 2 is upgraded in place.

To hold the renames back deterministically a test holds the account's lock (the background
job takes it for each batch; the lock is re-entrant, so the test's own calls still run), or
kills a child process right after its STORE returned. A second `MaildirAccount` on the same
directory stands for another process.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.storage.interfaces import Mailbox
from appliance.storage.mailbox_api import INBOX, FlagOperation
from appliance.storage.maildir import flags as flag_names
from appliance.storage.maildir import sync
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.index import INDEX_NAME, SCHEMA_VERSION
from appliance.storage.maildir.store import MaildirStore

ADDRESS = "alice@example.test"
BODY = b"Subject: dirty\n\nhello\n"
FLAGGED = frozenset({"\\Flagged"})
SEEN = frozenset({"\\Seen"})


@pytest.fixture
def account(tmp_path: Path) -> MaildirAccount:
    mail = MaildirAccount(ADDRESS, tmp_path / "alice")
    for i in range(5):
        mail.append(INBOX, BODY + b"%d\n" % i, SEEN)
    time.sleep(sync.DIRTY_WINDOW * 1.5)
    mail.sync(INBOX)
    return mail


def rows(root: Path) -> dict[int, tuple[str, str, str | None, int]]:
    """uid: (filename, flags, dirty mark, modseq) of INBOX, read as another process would."""
    with sqlite3.connect(f"file:{root / INDEX_NAME}?mode=ro", uri=True) as conn:
        found = conn.execute("SELECT m.uid, m.filename, m.flags, m.dirty, m.modseq "
                             "FROM messages m JOIN folders f ON f.id = m.folder_id "
                             "WHERE f.name = 'INBOX'").fetchall()
    return {uid: (name, flags, mark, modseq) for uid, name, flags, mark, modseq in found}


def names(root: Path) -> list[str]:
    return sorted(os.listdir(root / "cur"))


def letters(root: Path) -> list[str]:
    """The info letters of cur/'s files, in name (= UID) order."""
    return [name.partition(":2,")[2] for name in names(root)]


def consistent(root: Path) -> None:
    """No mark left, and every row's name is a file in cur/ (and the reverse)."""
    found = rows(root)
    assert all(mark is None for _, _, mark, _ in found.values())
    assert sorted(name for name, _, _, _ in found.values()) == names(root)


def test_store_commits_marked_rows_and_the_renames_follow(account: MaildirAccount) -> None:
    root = account._root
    with account._lock:                         # the background job waits for the lock
        result = account.store_flags(INBOX, [1, 2], FlagOperation.ADD, FLAGGED)
        marked = rows(root)
        assert [marked[uid][1] for uid in (1, 2, 3)] == ["\\Flagged \\Seen"] * 2 + ["\\Seen"]
        assert marked[1][0].endswith(":2,FS")
        assert marked[1][2] is not None
        assert marked[1][2].startswith("cur/")
        assert marked[1][2].endswith(":2,S")
        assert marked[3][2] is None
        assert letters(root) == ["S"] * 5       # nothing renamed yet
        assert account.read(INBOX, 1).endswith(b"0\r\n")        # found under its old name
        assert account.headers_many(INBOX, [2]) == {2: b"Subject: dirty\r\n\r\n"}
    assert account.wait_renames(10)
    assert letters(root) == ["FS", "FS", "S", "S", "S"]
    consistent(root)
    assert rows(root)[1][3] == result.changed[0].modseq       # completion is no new change
    assert account.read(INBOX, 1).endswith(b"0\r\n")
    account.close()


def test_reader_finds_the_file_under_either_name(account: MaildirAccount) -> None:
    root = account._root
    with account._lock:
        account.store_flags(INBOX, [3], FlagOperation.ADD, FLAGGED)
        new_name, _, mark, _ = rows(root)[3]
        assert mark is not None
        assert account.read(INBOX, 3).endswith(b"2\r\n")        # under the old name
        os.rename(root / mark, root / "cur" / new_name)          # as the job would
        assert account.read(INBOX, 3).endswith(b"2\r\n")        # under the new name
        assert account.headers_many(INBOX, [3]) == {3: b"Subject: dirty\r\n\r\n"}
    assert account.wait_renames(10)
    consistent(root)
    account.close()


def test_another_process_reads_and_its_sync_completes_without_a_change(
        account: MaildirAccount) -> None:
    root = account._root
    other = MaildirAccount(ADDRESS, root)
    before = other.sync(INBOX)
    with account._lock:
        result = account.store_flags(INBOX, [1, 4], FlagOperation.ADD, FLAGGED)
        assert other.read(INBOX, 4).endswith(b"3\r\n")          # its rows carry the mark
        box = Mailbox(1, ADDRESS, Path(root.name))
        MaildirStore(root.parent).deliver(b"Subject: new\n\nx\n", [box])   # forces a listing
        after = other.sync(INBOX)
        assert letters(root)[:5] == ["FS", "S", "S", "FS", "S"]   # the listing renamed first
    assert len(after.messages) == 6
    changed = {m.uid: m for m in after.messages if m not in before.messages}
    assert sorted(changed) == [1, 4, 6]                          # the STORE and the delivery
    assert changed[1].modseq == changed[4].modseq == result.changed[0].modseq
    assert changed[1].flags == FLAGGED | SEEN
    assert account.wait_renames(10)
    consistent(root)
    assert {m.uid: m.flags for m in account.sync(INBOX).messages} == {
        m.uid: m.flags for m in other.sync(INBOX).messages}
    other.close()
    account.close()


def test_another_process_stores_on_our_marks_and_renames_them_all(
        account: MaildirAccount) -> None:
    """Its STORE builds on our pending marks (one rename per file, not two); its job then
    renames every marked row of the folder, ours too."""
    root = account._root
    other = MaildirAccount(ADDRESS, root)
    other.sync(INBOX)
    with account._lock:
        with other._lock:
            account.store_flags(INBOX, [1, 2], FlagOperation.ADD, FLAGGED)
            other.store_flags(INBOX, [2, 3], FlagOperation.ADD, frozenset({"\\Answered"}))
            assert letters(root)[:3] == ["S", "S", "S"]
            assert [rows(root)[uid][2] is not None for uid in (1, 2, 3)] == [True] * 3
        assert other.wait_renames(10)
        assert letters(root)[:3] == ["FS", "FRS", "RS"]
    assert account.wait_renames(10)
    consistent(root)
    flags = {m.uid: m.flags for m in account.sync(INBOX).messages}
    assert flags[2] == {"\\Answered", "\\Flagged", "\\Seen"}
    assert flags == {m.uid: m.flags for m in other.sync(INBOX).messages}
    other.close()
    account.close()


def test_a_file_already_under_its_new_name_just_loses_the_mark(
        account: MaildirAccount) -> None:
    root = account._root
    with account._lock:
        account.store_flags(INBOX, [2], FlagOperation.ADD, FLAGGED)
        new_name, _, mark, modseq = rows(root)[2]
        assert mark is not None
        os.rename(root / mark, root / "cur" / new_name)
        other = MaildirAccount(ADDRESS, root)        # opening completes what a crash left
        assert rows(root)[2] == (new_name, "\\Flagged \\Seen", None, modseq)
        assert other.sync(INBOX).highest_modseq == modseq
    assert account.wait_renames(10)
    assert account.sync(INBOX).highest_modseq == modseq
    consistent(root)
    other.close()
    account.close()


def test_a_write_completes_the_pending_renames_first(account: MaildirAccount) -> None:
    root = account._root
    account.create_folder("Copies")
    with account._lock:
        account.store_flags(INBOX, [1, 2, 3], FlagOperation.ADD, FLAGGED)
        assert letters(root) == ["S"] * 5
        copied = account.copy(INBOX, [1], "Copies")          # same thread: lock re-entered
        assert letters(root) == ["FS", "FS", "FS", "S", "S"]
        assert all(mark is None for _, _, mark, _ in rows(root).values())
        account.store_flags(INBOX, [1], FlagOperation.REMOVE, FLAGGED)
        account.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"\\Answered"}))
        assert letters(root)[0] == "FS"          # a STORE builds on the mark: no rename
        assert rows(root)[1][2] is not None
    assert copied.target_uids == (1,)
    assert os.listdir(root / ".Copies" / "cur")[0].endswith(":2,FS")
    assert account.wait_renames(10)
    assert letters(root) == ["RS", "FS", "FS", "S", "S"]
    consistent(root)
    account.close()


def test_flags_changed_back_before_the_renames_need_none(account: MaildirAccount) -> None:
    root = account._root
    before = names(root)
    with account._lock:
        account.store_flags(INBOX, [1, 2, 3], FlagOperation.ADD, FLAGGED)
        account.store_flags(INBOX, [1, 2], FlagOperation.REMOVE, FLAGGED)
        marked = rows(root)
        assert [marked[uid][2] is not None for uid in (1, 2, 3)] == [False, False, True]
        assert [marked[uid][0] for uid in (1, 2)] == before[:2]
    assert account.wait_renames(10)
    assert letters(root) == ["S", "S", "FS", "S", "S"]
    consistent(root)
    account.close()


def test_a_store_after_another_process_renamed_our_marks(account: MaildirAccount) -> None:
    """Another process completed our marks (its listing) without a new MODSEQ, so our
    state's marks are stale: the STORE reads them afresh and builds on the right name."""
    root = account._root
    other = MaildirAccount(ADDRESS, root)
    with account._lock:
        account.store_flags(INBOX, [1], FlagOperation.ADD, FLAGGED)
        box = Mailbox(1, ADDRESS, Path(root.name))
        MaildirStore(root.parent).deliver(b"Subject: new\n\nx\n", [box])
        other.sync(INBOX)                                 # lists: renames ours first
        assert letters(root)[0] == "FS"
        account.store_flags(INBOX, [1], FlagOperation.REMOVE, frozenset({"\\Seen"}))
        assert rows(root)[1][2] == "cur/" + names(root)[0]     # marked where it really is
    assert account.wait_renames(10)
    assert letters(root)[0] == "F"
    assert {m.uid: m.flags for m in account.sync(INBOX).messages}[1] == FLAGGED
    consistent(root)
    other.close()
    account.close()


@pytest.mark.parametrize(("tool", "expected"), [
    ("RS", {"\\Answered", "\\Flagged", "\\Seen"}),     # the tool added R: both kept
    ("", {"\\Flagged"}),                               # the tool took S away: both kept
    ("FS", {"\\Flagged", "\\Seen"}),                   # the tool did what we did
])
def test_a_tool_renaming_a_dirty_file_is_merged_with_our_store(
        account: MaildirAccount, tool: str, expected: set[str]) -> None:
    """Who wins: both. Letters are independent and both changes start from the marked name,
    so each letter takes the value of the side that changed it; our OK'd STORE is kept and
    so is the tool's change, which (if it changes the flags) gets a new MODSEQ."""
    root = account._root
    with account._lock:
        result = account.store_flags(INBOX, [5], FlagOperation.ADD, FLAGGED)
        _, _, mark, _ = rows(root)[5]
        assert mark is not None
        base = mark.removeprefix("cur/").partition(":")[0]
        os.rename(root / mark, root / "cur" / f"{base}:2,{tool}")
    assert account.wait_renames(10)
    snapshot = account.sync(INBOX)
    meta = snapshot.messages[-1]
    assert meta.flags == expected
    own = result.changed[0].modseq
    assert meta.modseq == (own if expected == {"\\Flagged", "\\Seen"} else own + 1)
    assert snapshot.highest_modseq == meta.modseq
    spelled = {"\\Answered": "R", "\\Flagged": "F", "\\Seen": "S"}
    assert letters(root)[-1] == "".join(sorted(spelled[flag] for flag in expected))
    consistent(root)
    account.close()


def test_a_tool_removing_a_dirty_file_expunges_it(account: MaildirAccount) -> None:
    root = account._root
    with account._lock:
        account.store_flags(INBOX, [2], FlagOperation.ADD, FLAGGED)
        _, _, mark, _ = rows(root)[2]
        assert mark is not None
        os.unlink(root / mark)
        with pytest.raises(KeyError):
            account.read(INBOX, 2)
    assert account.wait_renames(10)
    assert [m.uid for m in account.sync(INBOX).messages] == [1, 3, 4, 5]
    consistent(root)
    account.close()


def test_a_tool_change_before_the_renames_is_not_hidden(account: MaildirAccount) -> None:
    """A tool renames another file between our commit and the job: the job's batch finds
    cur/ changed since the stamp it trusted, so its mark is not trusted (sync lists)."""
    root = account._root
    with account._lock:
        account.store_flags(INBOX, [1], FlagOperation.ADD, FLAGGED)
        victim = names(root)[3]
        os.rename(root / "cur" / victim, root / "cur" / victim.replace(":2,S", ":2,ST"))
        own = account._states[INBOX].stamp
        assert own is not None
        os.utime(root / "cur", ns=(0, own[1] - 1))   # a coarse clock: our mark's tick
    assert account.wait_renames(10)
    flags = {m.uid: m.flags for m in account.sync(INBOX).messages}
    assert flags[1] == FLAGGED | SEEN
    assert flags[4] == {"\\Seen", "\\Deleted"}
    account.close()


def test_our_renames_keep_the_stamp_trusted(account: MaildirAccount) -> None:
    root = account._root
    account.store_flags(INBOX, [1, 2, 3, 4, 5], FlagOperation.ADD, FLAGGED)
    assert account.wait_renames(10)
    stamp = account._states[INBOX].stamp
    assert stamp is not None
    assert stamp == sync.stamp_of(root)
    account.sync(INBOX)
    assert account._states[INBOX].stamp == stamp                 # no listing
    account.close()


def test_a_keyword_without_a_letter_marks_nothing(account: MaildirAccount) -> None:
    root = account._root
    many = frozenset(f"k{i:02d}" for i in range(27))
    account.store_flags(INBOX, [1], FlagOperation.ADD, many)
    assert account.wait_renames(10)
    account.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"k99"}))    # no letter left
    assert rows(root)[1][2] is None
    assert "k99" in rows(root)[1][1].split()
    assert account._renames.wait(0)                               # nothing was scheduled
    reopened = MaildirAccount(ADDRESS, root)
    assert "k99" in reopened.sync(INBOX).messages[0].flags
    reopened.close()
    account.close()


CRASHING_STORE = """
import os, signal, sys
from pathlib import Path
from appliance.storage.mailbox_api import FlagOperation
from appliance.storage.maildir.account import MaildirAccount
mail = MaildirAccount("alice@example.test", Path(sys.argv[1]))
with mail._lock:                    # the background job never gets to run
    mail.store_flags("INBOX", [1, 2, 3], FlagOperation.ADD, frozenset({"\\\\Flagged"}))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_open_after_a_crash_completes_the_marked_rows(account: MaildirAccount) -> None:
    root = account._root
    account.close()
    child = subprocess.run([sys.executable, "-c", CRASHING_STORE, str(root)],
                           capture_output=True, timeout=60)
    assert child.returncode == -9, child.stderr.decode()
    assert sum(mark is not None for _, _, mark, _ in rows(root).values()) == 3
    assert letters(root) == ["S"] * 5                    # the renames never happened
    reopened = MaildirAccount(ADDRESS, root)
    assert letters(root) == ["FS", "FS", "FS", "S", "S"]  # done on open, before any sync
    consistent(root)
    assert [m.flags for m in reopened.sync(INBOX).messages] == [FLAGGED | SEEN] * 3 + [SEEN] * 2
    reopened.close()


def test_an_index_of_version_2_is_upgraded_in_place(account: MaildirAccount) -> None:
    root = account._root
    account.close()
    before = rows(root)
    with sqlite3.connect(root / INDEX_NAME) as conn:
        conn.execute("DROP INDEX messages_dirty")
        conn.execute("ALTER TABLE messages DROP COLUMN dirty")
        conn.execute("PRAGMA user_version = 2")
    reopened = MaildirAccount(ADDRESS, root)
    assert not (root / (INDEX_NAME + ".broken")).exists()      # not rebuilt
    assert rows(root) == before                                # UIDs, names, MODSEQs kept
    with sqlite3.connect(root / INDEX_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master "
                            "WHERE name = 'messages_dirty'").fetchone() == (1,)
    reopened.store_flags(INBOX, [1], FlagOperation.ADD, FLAGGED)
    assert reopened.wait_renames(10)
    assert letters(root)[0] == "FS"
    reopened.close()


def test_a_rebuilt_index_keeps_the_marks_of_a_damaged_one(account: MaildirAccount) -> None:
    root = account._root
    with account._lock:
        account.store_flags(INBOX, [2], FlagOperation.ADD, FLAGGED)
        shutil.copytree(root, root.parent / "copy")       # the state a crash would leave
    account.close()
    copy = root.parent / "copy"
    with sqlite3.connect(copy / INDEX_NAME) as conn:
        conn.execute("PRAGMA user_version = 99")             # a version we cannot read
    reopened = MaildirAccount(ADDRESS, copy)
    assert (copy / (INDEX_NAME + ".broken")).exists()
    assert [m.flags for m in reopened.sync(INBOX).messages][1] == FLAGGED | SEEN
    assert letters(copy)[1] == "FS"
    consistent(copy)
    reopened.close()


def test_threads_and_a_second_process_storing_at_once(tmp_path: Path) -> None:
    """Four threads of one process and a second opener STORE on their own messages of one
    folder while the jobs rename; each checks that every message still reads, and at the
    end each message has the flags its owner last set, in the index and in its name."""
    root = tmp_path / "alice"
    first = MaildirAccount(ADDRESS, root)
    for i in range(200):
        first.append(INBOX, BODY + b"%d\n" % i)
    second = MaildirAccount(ADDRESS, root)
    owners = [(first, range(1 + n, 201, 5)) for n in range(4)] + [(second, range(5, 201, 5))]
    expected: dict[int, frozenset[str]] = {}
    errors: list[BaseException] = []
    pool = ("\\Seen", "\\Flagged", "\\Answered", "$Work")

    def work(mail: MaildirAccount, uids: range, seed: int) -> None:
        rng = random.Random(seed)
        mine = dict.fromkeys(uids, frozenset[str]())
        try:
            for _ in range(25):
                picked = rng.sample(list(uids), 8)
                flags = frozenset(rng.sample(pool, rng.randint(0, 2)))
                operation = rng.choice(list(FlagOperation))
                mail.store_flags(INBOX, picked, operation, flags)
                for uid in picked:
                    old = mine[uid]
                    mine[uid] = (old | flags if operation is FlagOperation.ADD else
                                 old - flags if operation is FlagOperation.REMOVE else flags)
                    assert mail.read(INBOX, uid).startswith(b"Subject: dirty")
            expected.update(mine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(mail, uids, n))
               for n, (mail, uids) in enumerate(owners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert first.wait_renames(10)
    assert second.wait_renames(10)
    for mail in (first, second):
        assert {m.uid: m.flags for m in mail.sync(INBOX).messages} == expected
    consistent(root)
    keywords = flag_names.read_keywords(root)
    for name, flag_text, _, _ in rows(root).values():
        spelled = flag_names.letters_to_flags(flag_names.split_name(name)[1] or "", keywords)
        assert spelled == frozenset(flag_text.split())
    second.close()
    first.close()
