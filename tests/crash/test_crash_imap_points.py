"""SIGKILL at every file-system step of the mail store's APPEND, STORE, COPY and MOVE.

`test_crash_imap.py` kills the engine at random moments; this file kills a process that
runs one `MaildirAccount` call right before its 1st, 2nd, 3rd, ... step on the account's
files (an audit hook on open, rename, link, unlink and utime under the account's directory
sends the SIGKILL), until the call completes. After each kill the account is opened again,
as a restarted engine would, and every folder synced. The call lost its OK, so it may have
happened or not, but wholly: a message appended once or not at all, old flags or new ones,
copied or not, moved or not (RFC 6851 section 3.3: never in both folders, never in
neither), and the index agrees with the Maildir.

SIGKILL keeps what reached the page cache, so this covers process crashes, not power cuts
(an unsynced rename can vanish only on the latter). For those, a second test traces each
call and checks that every directory whose entries it changed (tmp/ aside) is opened for
`fsync_dir` after its last change and before the call returns.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.storage.maildir import flags as names
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.folders import folder_path
from appliance.storage.maildir.index import INDEX_NAME

ADDRESS = "points@example.test"
FOLDERS = ("INBOX", "Other", "Copies")
A_FLAGS = frozenset({"\\Seen", "$Label1"})
NEW_FLAGS = frozenset({"\\Flagged", "$Label2"})
MAX_STEPS = 80           # far more than any of these calls takes

# The child: open the account, arm the hook, run one call. Exit 0 = the call finished
# before step `stop_at`; -SIGKILL = killed right before it. Each step is printed as
# event<TAB>argument<TAB>argument (for open: the path and its flags).
CHILD = """
import os, signal, sys
from pathlib import Path
from appliance.storage.mailbox_api import FlagOperation
from appliance.storage.maildir.account import MaildirAccount
root, operation, stop_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
mail = MaildirAccount("points@example.test", Path(root))
steps = 0
def hook(event, args):
    global steps
    if event in ("open", "os.rename", "os.link", "os.remove", "os.utime") and args \\
            and isinstance(args[0], (str, bytes, os.PathLike)) \\
            and os.fsdecode(args[0]).startswith(root):
        steps += 1
        print(event, *(os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else a
                       for a in args[:3]), sep="\t", flush=True)
        if steps == stop_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
message = b"Subject: c\\r\\nX-Crash-Id: C\\r\\n\\r\\nthird\\r\\n"
added = frozenset({"\\\\Flagged", "$Label2"})
if operation == "append":
    mail.append("Other", message, added)
elif operation == "store":
    mail.store_flags("INBOX", [1], FlagOperation.ADD, added)
elif operation == "copy":
    mail.copy("INBOX", [1, 2], "Copies")
else:
    mail.move("INBOX", [1, 2], "Other")
"""

Found = dict[str, list[tuple[str, int, frozenset[str]]]]   # crash id -> (folder, uid, flags)


def prepare(root: Path) -> None:
    """INBOX holds A (UID 1, flagged \\Seen $Label1) and B (UID 2); Other and Copies empty."""
    mail = MaildirAccount(ADDRESS, root)
    mail.create_folder("Other")
    mail.create_folder("Copies")
    for crash_id, flags in (("A", A_FLAGS), ("B", frozenset[str]())):
        mail.append("INBOX", f"Subject: x\r\nX-Crash-Id: {crash_id}\r\n\r\nbody\r\n".encode(),
                    flags)
    mail.close()


def reopen(root: Path) -> tuple[Found, list[str]]:
    """What a restarted engine sees: every message by crash id, and index problems."""
    mail = MaildirAccount(ADDRESS, root)
    try:
        return look(mail, root)
    finally:
        mail.close()


def look(mail: MaildirAccount, root: Path) -> tuple[Found, list[str]]:
    """Every message `mail` syncs, by crash id, and index problems."""
    found: Found = {}
    for folder in FOLDERS:
        for meta in mail.sync(folder).messages:
            head = mail.read(folder, meta.uid).split(b"X-Crash-Id: ")[1]
            crash_id = head.split(b"\r\n")[0].decode()
            found.setdefault(crash_id, []).append((folder, meta.uid, meta.flags))
    return found, [p for folder in FOLDERS for p in index_problems(root, folder)]


def index_problems(root: Path, folder: str) -> list[str]:
    """A row for every file in cur/ and new/ and the reverse; names spell the flags."""
    path = folder_path(root, folder)
    with sqlite3.connect(f"file:{root / INDEX_NAME}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT m.subdir, m.filename, m.flags, m.uid < f.uidnext "
                            "FROM messages m JOIN folders f ON f.id = m.folder_id "
                            "WHERE f.name = ?", (folder,)).fetchall()
    files = {(sub, p.name) for sub in ("cur", "new") for p in (path / sub).iterdir()}
    indexed = {(str(sub), str(name)) for sub, name, _, _ in rows}
    problems = [f"{folder}: files without rows {sorted(files - indexed)}"] * (files > indexed)
    problems += [f"{folder}: rows without files {sorted(indexed - files)}"] * (indexed > files)
    problems += [f"{folder}: files and rows differ"] * (not files >= indexed >= files)
    keywords = names.read_keywords(path)
    for _, name, flag_text, below in rows:
        spelled = names.letters_to_flags(names.split_name(str(name))[1] or "", keywords)
        if spelled != names.lettered(str(flag_text).split(), keywords) or not below:
            problems.append(f"{folder}: {name} against {flag_text!r} (UID below UIDNEXT: "
                            f"{bool(below)})")
    return problems


def expect_append(found: Found) -> bool:
    """True when the APPEND happened; AssertionError when it half happened."""
    unchanged = {"A": [("INBOX", 1, A_FLAGS)], "B": [("INBOX", 2, frozenset())]}
    assert {k: v for k, v in found.items() if k != "C"} == unchanged
    assert found.get("C") in (None, [("Other", 1, NEW_FLAGS)]), found
    return "C" in found


def expect_store(found: Found) -> bool:
    assert found["A"] in ([("INBOX", 1, A_FLAGS)], [("INBOX", 1, A_FLAGS | NEW_FLAGS)])
    assert found["B"] == [("INBOX", 2, frozenset())]
    assert set(found) == {"A", "B"}
    return found["A"] != [("INBOX", 1, A_FLAGS)]


def expect_copy(found: Found) -> bool:
    originals = {"A": ("INBOX", 1, A_FLAGS), "B": ("INBOX", 2, frozenset())}
    for crash_id, original in originals.items():
        copies = [f for f in found[crash_id] if f[0] == "Copies"]
        assert original in found[crash_id]
        assert len(found[crash_id]) - len(copies) == 1
        assert [flags for _, _, flags in copies] in ([], [original[2]]), found
    return len(found["A"]) + len(found["B"]) > 2


def expect_move(found: Found) -> bool:
    for crash_id, flags in (("A", A_FLAGS), ("B", frozenset())):
        places = [(folder, f) for folder, _, f in found.get(crash_id, [])]
        assert places in ([("INBOX", flags)], [("Other", flags)]), (
            f"{crash_id} after an interrupted MOVE: {found.get(crash_id)}")
    return any(folder == "Other" for folder, _, _ in found["A"] + found["B"])


EXPECT: dict[str, Callable[[Found], bool]] = {
    "append": expect_append, "store": expect_store, "copy": expect_copy, "move": expect_move}


def kill_at_every_step(tmp_path: Path, operation: str, expect: Callable[[Found], bool],
                       watch: bool = False) -> list[tuple[int, bool]]:
    """Run `operation` killed before step 1, 2, ... until it completes; check each restart
    with `expect`. Returns (step, whether the call had happened) per run.

    With `watch`, a second `MaildirAccount` (another engine process in real life) has the
    account open and synced before the call and is what looks after the kill; a restart
    must then see the same."""
    template = tmp_path / "template"
    prepare(template)
    outcomes: list[tuple[int, bool]] = []
    for stop_at in range(1, MAX_STEPS):
        root = tmp_path / f"run{stop_at}"
        shutil.copytree(template, root)
        watcher = MaildirAccount(ADDRESS, root) if watch else None
        if watcher is not None:
            look(watcher, root)
        child = subprocess.run([sys.executable, "-c", CHILD, str(root), operation,
                                str(stop_at)], capture_output=True, timeout=60)
        assert child.returncode in (0, -9), child.stderr.decode()
        if watcher is not None:
            found, problems = look(watcher, root)
            watcher.close()
            assert reopen(root) == (found, problems), f"killed before step {stop_at}"
        else:
            found, problems = reopen(root)
        assert problems == [], f"killed before step {stop_at}: {problems}"
        try:
            outcomes.append((stop_at, expect(found)))
        except AssertionError as exc:
            raise AssertionError(f"killed before step {stop_at}: {exc}") from exc
        if child.returncode == 0:
            print(f"{operation}: (step, happened) {outcomes}")
            assert outcomes[-1][1], "the call that finished did not take effect"
            assert not outcomes[0][1], "a kill before the first step changed something"
            return outcomes
    raise AssertionError(f"{operation} took more than {MAX_STEPS} steps")


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("operation", ["append", "store", "copy", "move"])
def test_kill_before_every_step_leaves_each_message_whole(tmp_path: Path,
                                                          operation: str) -> None:
    kill_at_every_step(tmp_path, operation, EXPECT[operation])


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("operation", ["copy", "move"])
def test_a_process_with_the_account_open_sees_a_killed_call_whole(tmp_path: Path,
                                                                  operation: str) -> None:
    """The intent a killed COPY/MOVE left is settled by the sync of a process that had the
    account open all along, not only by a restart (`MaildirAccount._settle`)."""
    kill_at_every_step(tmp_path, operation, EXPECT[operation], watch=True)


def copied_all_or_none(found: Found) -> bool:
    copies = [crash_id for crash_id, places in found.items()
              for folder, _, _ in places if folder == "Copies"]
    assert sorted(copies) in ([], ["A", "B"]), f"copies of {copies} only"
    return bool(copies)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_copy_of_two_messages_killed_midway_copies_both_or_neither(tmp_path: Path) -> None:
    kill_at_every_step(tmp_path, "copy", copied_all_or_none)


def unsynced_directories(trace: str) -> list[str]:
    """Directories (other than tmp/) whose entries a call changed with no directory open
    (`core.fsio.fsync_dir`) after the last change: renames a power cut could undo."""
    last_change: dict[str, int] = {}
    last_sync: dict[str, int] = {}
    for number, line in enumerate(trace.splitlines()):
        event, *args = line.split("\t")
        if event == "open" and args[-1].isdigit() and int(args[-1]) & os.O_DIRECTORY:
            last_sync[args[0].rstrip("/")] = number
        elif event == "os.rename":                  # both directories change
            for path in args[:2]:
                last_change[os.path.dirname(path)] = number
        elif event in ("os.link", "os.remove"):     # only the new name's / the old one's
            last_change[os.path.dirname(args[1 if event == "os.link" else 0])] = number
    return sorted(d for d, n in last_change.items()
                  if not d.endswith("/tmp") and last_sync.get(d, -1) < n)


@pytest.mark.parametrize("operation", ["append", "store", "copy", "move"])
def test_every_changed_directory_is_fsynced_before_the_call_returns(
        tmp_path: Path, operation: str) -> None:
    """mailbox_api: a mutating call is durable when it returns (the caller answers OK)."""
    prepare(tmp_path / "account")
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "account"), operation,
                            "0"], capture_output=True, timeout=60, text=True)
    assert child.returncode == 0, child.stderr
    assert "os.rename" in child.stdout or "os.link" in child.stdout, child.stdout
    assert unsynced_directories(child.stdout) == [], child.stdout
