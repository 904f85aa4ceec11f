"""COPY and MOVE intents of the Maildir store (`appliance/storage/maildir/intents.py`): an
intent a crash left in the index is undone when the account opens (or when a process that
has it open syncs), so the call happened wholly or not at all; a live one of another
process is left alone; the index of the version before intents is upgraded in place.

The crashes are set up by hand, as the crashed call would have left the disk: links made
with `os.link` under fresh base names, sources unlinked, and the intent row written with
plain SQL. `tests/crash/test_crash_imap_points.py` kills real calls at every file step."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import pytest
from unit.test_maildir_bulk import count_directory_syncs

from appliance.core.fsio import unique_name
from appliance.storage.mailbox_api import INBOX
from appliance.storage.maildir import files, locks
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.folders import folder_path
from appliance.storage.maildir.index import INDEX_NAME, SCHEMA_VERSION

ADDRESS = "alice@example.test"
SEEN = frozenset({"\\Seen", "$Label1"})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """INBOX holds UID 1 (\\Seen $Label1) and UID 2 (no flags); Other and Copies are empty."""
    account = MaildirAccount(ADDRESS, tmp_path / "alice")
    account.create_folder("Other")
    account.create_folder("Copies")
    account.append(INBOX, b"Subject: one\r\n\r\nfirst\r\n", SEEN)
    account.append(INBOX, b"Subject: two\r\n\r\nsecond\r\n")
    account.close()
    return tmp_path / "alice"


def rows(root: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / INDEX_NAME) as conn:
        return conn.execute(sql).fetchall()


def source_names(root: Path) -> dict[int, str]:
    found = rows(root, "SELECT uid, filename FROM messages m JOIN folders f "
                       "ON f.id = m.folder_id WHERE f.name = 'INBOX'")
    return {int(str(uid)): str(name) for uid, name in found}


def crash_halfway(root: Path, kind: str, target: str, linked: int, unlinked: int) -> list[str]:
    """What a COPY/MOVE of UIDs 1 and 2 killed midway leaves: its intent, the first `linked`
    links in the target's cur/, the first `unlinked` sources gone. The target names."""
    sources = source_names(root)
    target_dir = folder_path(root, target)
    planned = [(uid, name, f"{unique_name()},S=1,W=1:2,") for uid, name in sorted(sources.items())]
    entries = [["cur", name, link] for _, name, link in planned]
    with sqlite3.connect(root / INDEX_NAME) as conn:
        conn.execute("INSERT INTO intents (kind, source, target, files) VALUES (?, ?, ?, ?)",
                     (kind, INBOX, target, json.dumps(entries)))
    for _, name, link in planned[:linked]:
        os.link(root / "cur" / name, target_dir / "cur" / link)
    for _, name, _ in planned[:unlinked]:
        os.unlink(root / "cur" / name)
    return [link for _, _, link in planned]


def state_of(account: MaildirAccount) -> dict[str, list[tuple[int, frozenset[str]]]]:
    return {folder: [(m.uid, m.flags) for m in account.sync(folder).messages]
            for folder in (INBOX, "Other", "Copies")}


BEFORE = {INBOX: [(1, SEEN), (2, frozenset())], "Other": [], "Copies": []}


def agrees_with_disk(root: Path) -> None:
    """A row for every file of every folder and the reverse, and no intent left."""
    for folder in (INBOX, "Other", "Copies"):
        path = folder_path(root, folder)
        on_disk = {(sub, n) for sub in ("cur", "new") for n in os.listdir(path / sub)}
        indexed = rows(root, "SELECT m.subdir, m.filename FROM messages m JOIN folders f ON "
                             f"f.id = m.folder_id WHERE f.name = '{folder}'")
        assert on_disk == {(str(s), str(n)) for s, n in indexed}, folder
    assert rows(root, "SELECT * FROM intents") == []


@pytest.mark.parametrize("linked", [0, 1, 2])
def test_a_copy_killed_midway_is_undone_on_open(root: Path, linked: int) -> None:
    links = crash_halfway(root, "copy", "Copies", linked=linked, unlinked=0)
    account = MaildirAccount(ADDRESS, root)
    assert state_of(account) == BEFORE                    # RFC 9051 6.4.7: target as it was
    assert not any((root / ".Copies" / "cur" / link).exists() for link in links)
    account.close()
    agrees_with_disk(root)


@pytest.mark.parametrize(("linked", "unlinked"), [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)])
def test_a_move_killed_midway_is_undone_on_open(root: Path, linked: int, unlinked: int) -> None:
    names_before = source_names(root)
    crash_halfway(root, "move", "Other", linked=linked, unlinked=unlinked)
    account = MaildirAccount(ADDRESS, root)
    # RFC 6851 3.3: in the source with its UID and flags again, not in both, not in neither.
    assert state_of(account) == BEFORE
    assert account.read(INBOX, 1) == b"Subject: one\r\n\r\nfirst\r\n"
    account.close()
    assert source_names(root) == names_before             # the same files came back
    assert os.listdir(root / ".Other" / "cur") == []
    agrees_with_disk(root)


def test_the_undo_fsyncs_each_directory_it_changed_restores_first(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A power cut during or after the undo keeps it whole: the sources brought back are
    durable before any target link goes (else a cut could leave the message in neither)."""
    crash_halfway(root, "move", "Other", linked=2, unlinked=1)
    synced = count_directory_syncs(monkeypatch)
    account = MaildirAccount(ADDRESS, root)
    assert synced[-2:] == [root / "cur", root / ".Other" / "cur"]
    monkeypatch.undo()
    assert state_of(account) == BEFORE
    account.close()


def test_a_process_with_the_account_open_undoes_another_ones_crash(root: Path) -> None:
    watcher = MaildirAccount(ADDRESS, root)
    assert state_of(watcher) == BEFORE                    # cached states, trusted stamps
    crash_halfway(root, "move", "Other", linked=2, unlinked=1)
    assert state_of(watcher) == BEFORE                    # its sync found and undid it
    watcher.close()
    agrees_with_disk(root)


def test_a_live_intent_of_another_process_is_left_alone(root: Path) -> None:
    watcher = MaildirAccount(ADDRESS, root)
    state_of(watcher)
    other = locks.IntentGuard(root)            # another process's COPY, under way
    other.hold()
    links = crash_halfway(root, "copy", "Copies", linked=1, unlinked=0)
    assert state_of(watcher) == BEFORE                    # the link is not adopted ...
    assert (root / ".Copies" / "cur" / links[0]).exists()  # ... nor removed
    assert len(rows(root, "SELECT id FROM intents")) == 1
    other.release()                            # it died: the next write transaction undoes
    watcher.append("Copies", b"Subject: three\r\n\r\nthird\r\n")
    assert state_of(watcher)["Copies"] == [(1, frozenset())]
    assert not (root / ".Copies" / "cur" / links[0]).exists()
    watcher.close()
    other.close()
    agrees_with_disk(root)


def test_copy_and_move_leave_no_intent_and_hold_no_lock(root: Path) -> None:
    account = MaildirAccount(ADDRESS, root)
    copied = account.copy(INBOX, [1, 2], "Copies")
    moved = account.move(INBOX, [1, 2], "Other")
    assert (copied.source_uids, copied.target_uids) == ((1, 2), (1, 2))
    assert (moved.source_uids, moved.target_uids) == ((1, 2), (1, 2))
    assert rows(root, "SELECT * FROM intents") == []
    assert locks.IntentGuard(root).none_running()
    assert account.copy(INBOX, [1, 2], "Copies").target_uids == ()    # gone: nothing planned
    assert state_of(account) == {INBOX: [], "Other": [(1, SEEN), (2, frozenset())],
                                 "Copies": [(1, SEEN), (2, frozenset())]}
    account.close()
    agrees_with_disk(root)


def test_a_copy_that_fails_midway_is_undone_at_once(root: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up at the second link: the call fails, the target is as it was."""
    real_link = files.link_copy
    calls = []

    def second_fails(source: Path, folder: Path, filename: str, subdir: str = "cur") -> None:
        calls.append(filename)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_link(source, folder, filename, subdir)

    account = MaildirAccount(ADDRESS, root)
    monkeypatch.setattr(files, "link_copy", second_fails)
    with pytest.raises(OSError, match="No space"):
        account.move(INBOX, [1, 2], "Other")
    monkeypatch.setattr(files, "link_copy", real_link)
    assert state_of(account) == BEFORE
    assert os.listdir(root / ".Other" / "cur") == []
    assert rows(root, "SELECT * FROM intents") == []
    assert account.move(INBOX, [1, 2], "Other").target_uids == (1, 2)   # usable again
    account.close()
    agrees_with_disk(root)


def test_an_intent_naming_paths_outside_the_folder_touches_nothing(root: Path) -> None:
    (root / "victim").write_bytes(b"keep me")
    bad = [["cur", "../victim", "x"], ["tmp", "a", "b"], ["cur", "a", "../../victim"],
           ["cur", "a", ".hidden"], "junk"]
    with sqlite3.connect(root / INDEX_NAME) as conn:
        conn.execute("INSERT INTO intents (kind, source, target, files) VALUES (?, ?, ?, ?)",
                     ("move", INBOX, "Other", json.dumps(bad)))
        conn.execute("INSERT INTO intents (kind, source, target, files) VALUES (?, ?, ?, ?)",
                     ("copy", INBOX, "Copies", "not json"))
    account = MaildirAccount(ADDRESS, root)
    assert state_of(account) == BEFORE
    account.close()
    assert (root / "victim").read_bytes() == b"keep me"
    agrees_with_disk(root)


def test_an_index_of_version_1_is_upgraded_in_place(root: Path) -> None:
    before = rows(root, "SELECT name, uidvalidity, uidnext FROM folders ORDER BY name")
    with sqlite3.connect(root / INDEX_NAME) as conn:
        conn.execute("DROP TABLE intents")
        conn.execute("PRAGMA user_version = 1")
    account = MaildirAccount(ADDRESS, root)
    assert state_of(account) == BEFORE
    assert account.move(INBOX, [1], "Other").target_uids == (1,)
    account.close()
    assert not (root / (INDEX_NAME + ".broken")).exists()          # not rebuilt
    assert rows(root, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(root, "SELECT name, uidvalidity, uidnext FROM folders ORDER BY name") == [
        (name, validity, int(str(nxt)) + (1 if name == "Other" else 0))
        for name, validity, nxt in before]


def test_a_rebuilt_index_keeps_the_intents_of_another_version(root: Path) -> None:
    crash_halfway(root, "copy", "Copies", linked=2, unlinked=0)
    with sqlite3.connect(root / INDEX_NAME) as conn:
        conn.execute("PRAGMA user_version = 99")
    account = MaildirAccount(ADDRESS, root)
    assert (root / (INDEX_NAME + ".broken")).exists()
    assert state_of(account) == BEFORE
    account.close()
    agrees_with_disk(root)
