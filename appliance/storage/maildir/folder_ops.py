"""Folder operations of a `MaildirAccount`: the folder list, create, delete, rename,
subscriptions, special use, and the per-folder state cache they keep consistent.

A folder exists when its directory does (the Maildir is the truth); its index row (UIDVALIDITY,
UIDNEXT, HIGHESTMODSEQ, special use) is made when first needed, so folders made by other
tools work too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from appliance.core.fsio import DIRECTORY_SYNC, unique_name
from appliance.storage.mailbox_api import (
    DEFAULT_FOLDERS,
    INBOX,
    FolderExistsError,
    FolderInfo,
    MailboxError,
    NoSuchFolderError,
    SpecialUse,
)
from appliance.storage.maildir.folders import (
    folder_path,
    is_inside,
    list_folder_dirs,
    make_folder_dir,
    normalise,
    parents,
)
from appliance.storage.maildir.index import next_uidvalidity, write
from appliance.storage.maildir.sync import FolderState, folder_row, load_state

_DEFAULT_USE = {name: use.value for name, use in DEFAULT_FOLDERS}
_DEFAULTS_MADE = "default_folders_created"
_DELETING = "mailstead-deleted"     # no leading dot: never mistaken for a folder


class FolderOps:
    """The folder half of `MaildirAccount` (which adds messages and the account-wide calls)."""

    _lock: threading.RLock
    _generation: int

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self._root = root
        self._conn = conn
        self._states: dict[str, FolderState] = {}

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction, or the one already open."""
        if self._conn.in_transaction:
            yield
        else:
            with write(self._conn):
                yield

    def _set_up(self) -> None:
        """Make INBOX's Maildir, and the special-use folders on the account's first open."""
        make_folder_dir(self._root, inbox=True)
        for leftover in self._root.glob(f"{_DELETING}.*"):    # a crash during delete_folder
            shutil.rmtree(leftover, ignore_errors=True)
        with self._lock, self._writing():
            self._ensure_row(INBOX)
            if self._conn.execute("SELECT 1 FROM meta WHERE key = ?",
                                  (_DEFAULTS_MADE,)).fetchone():
                return
            for name, use in DEFAULT_FOLDERS:
                if not self._exists(name):
                    make_folder_dir(folder_path(self._root, name), inbox=False)
                self._ensure_row(name, use.value)
            self._conn.execute("INSERT INTO meta (key, value) VALUES (?, '1')", (_DEFAULTS_MADE,))

    def _ensure_row(self, name: str, special_use: str | None = None) -> None:
        """Give the folder an index row if it has none (a new UIDVALIDITY, RFC 3501 2.3.1.1)."""
        use = special_use or _DEFAULT_USE.get(name)
        if folder_row(self._conn, name) is None:
            self._conn.execute(
                "INSERT INTO folders (name, uidvalidity, uidnext, highest_modseq, special_use, "
                "recent_uid) VALUES (?, ?, 1, 1, ?, 1)", (name, next_uidvalidity(self._root), use))
        elif special_use is not None:
            self._conn.execute("UPDATE folders SET special_use = ? WHERE name = ?",
                               (special_use, name))

    def _drop_row(self, name: str) -> None:
        row = folder_row(self._conn, name)
        if row is not None:
            for table in ("messages", "expunged", "cache"):
                self._conn.execute(f"DELETE FROM {table} WHERE folder_id = ?",  # noqa: S608
                                   (row[0],))
            self._conn.execute("DELETE FROM folders WHERE id = ?", (row[0],))
        self._states.pop(name, None)

    def _path_of(self, name: str) -> Path:
        return folder_path(self._root, normalise(name))

    def _exists(self, normal: str) -> bool:
        return (folder_path(self._root, normal) / "cur").is_dir()

    def _state(self, name: str) -> FolderState:
        """The cached state of an existing folder (loaded from the index when first asked)."""
        normal = normalise(name)
        state = self._states.get(normal)
        if state is None:
            if not self._exists(normal):
                raise NoSuchFolderError(f"no folder {name}")
            state = self._reload(normal)
        return state

    def _reload(self, name: str) -> FolderState:
        with self._writing():
            self._ensure_row(name)
            row = folder_row(self._conn, name)
            assert row is not None
            state = load_state(self._conn, name, folder_path(self._root, name), row)
        self._states[name] = state
        return state

    # -- the AccountMail folder calls --------------------------------------------------------

    def folders(self) -> list[FolderInfo]:
        with self._lock:
            found = list_folder_dirs(self._root)
            uses = dict(self._conn.execute("SELECT name, special_use FROM folders"))
            subscribed = {row[0] for row in self._conn.execute("SELECT name FROM subscriptions")}
        ordered = [INBOX, *sorted(n for n in found if n != INBOX)]
        return [FolderInfo(name, SpecialUse(uses[name]) if uses.get(name) else None,
                           name in subscribed,
                           any(is_inside(other, name) and other != name for other in found))
                for name in ordered]

    def create_folder(self, name: str, special_use: SpecialUse | None = None) -> None:
        normal = normalise(name)
        with self._lock, self._writing():
            if self._exists(normal):
                raise FolderExistsError(f"folder {name} exists")
            for parent in parents(normal):
                if not self._exists(parent):
                    self._make(parent, None)
            self._make(normal, special_use.value if special_use else None)
            self._generation += 1

    def _make(self, name: str, special_use: str | None) -> None:
        self._drop_row(name)                  # a stale row of a folder removed behind our back
        make_folder_dir(folder_path(self._root, name), inbox=False)
        self._ensure_row(name, special_use)

    def delete_folder(self, name: str) -> None:
        normal = normalise(name)
        if normal == INBOX:
            raise MailboxError("INBOX cannot be deleted")
        with self._lock, self._writing():
            if not self._exists(normal):
                raise NoSuchFolderError(f"no folder {name}")
            # Out of sight atomically first (a name that is no folder), then removed.
            doomed = self._root / f"{_DELETING}.{unique_name()}"
            os.rename(folder_path(self._root, normal), doomed)
            DIRECTORY_SYNC.sync(self._root)
            self._drop_row(normal)
            self._generation += 1
        shutil.rmtree(doomed, ignore_errors=True)

    def _rename_tree(self, old: str, new: str) -> None:
        """Rename a non-INBOX folder and its children (directories and rows)."""
        if not self._exists(old):
            raise NoSuchFolderError(f"no folder {old}")
        if self._exists(new):
            raise FolderExistsError(f"folder {new} exists")
        if is_inside(new, old):
            raise MailboxError("cannot move a folder into itself")
        moving = sorted(n for n in list_folder_dirs(self._root) if is_inside(n, old))
        targets = {n: normalise(new + n[len(old):]) for n in moving}
        for parent in parents(new):
            if not self._exists(parent):
                self._make(parent, None)
        for source, target in targets.items():
            self._drop_row(target)
            os.rename(folder_path(self._root, source), folder_path(self._root, target))
            self._conn.execute("UPDATE folders SET name = ? WHERE name = ?", (target, source))
            self._conn.execute("UPDATE OR REPLACE subscriptions SET name = ? WHERE name = ?",
                               (target, source))
            self._states.pop(source, None)
        DIRECTORY_SYNC.sync(self._root)
        self._generation += 1

    def set_subscribed(self, name: str, subscribed: bool) -> None:
        normal = normalise(name)
        with self._lock, self._writing():
            if subscribed:
                self._conn.execute("INSERT OR IGNORE INTO subscriptions (name) VALUES (?)",
                                   (normal,))
            else:
                self._conn.execute("DELETE FROM subscriptions WHERE name = ?", (normal,))
