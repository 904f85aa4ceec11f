"""`FolderState`: one folder as this process last saw it (its index rows, where each file is,
and the stamp of its last listing); `sync` keeps it up to date with the index and the disk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta

Stamp = tuple[int, int]        # mtime_ns of new/ and cur/


@dataclass
class FolderState:
    """One folder as this process last saw it (index rows plus where each file is)."""

    id: int
    name: str
    path: Path
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    recent_uid: int
    special_use: str | None
    metas: dict[int, MessageMeta] = field(default_factory=dict)
    files: dict[int, tuple[str, str]] = field(default_factory=dict)  # uid: (subdir, name)
    moved: dict[int, tuple[str, str]] = field(default_factory=dict)  # uid: old name (dirty)
    stamp: Stamp | None = None           # trusted stamp of the last listing
    data_version: int = -1
    _snapshot: tuple[MessageMeta, ...] | None = None
    _last_uid: int = 0                    # highest UID in `metas`
    _ordered: bool = True                 # `metas` iterates in ascending UID

    def snapshot(self, recent: frozenset[int] = frozenset()) -> FolderSnapshot:
        if self._snapshot is None:
            if not self._ordered:             # rare: rows arrived out of UID order
                for uid in sorted(self.metas):
                    self.metas[uid] = self.metas.pop(uid)
                self._ordered = True
            self._snapshot = tuple(self.metas.values())
        return FolderSnapshot(self.name, self.uidvalidity, self.uidnext, self.highest_modseq,
                              self._snapshot, recent)

    def put(self, meta: MessageMeta, subdir: str, filename: str,
            moved_from: tuple[str, str] | None = None) -> None:
        """Add or replace a message (a replaced one keeps its place in `metas`);
        `moved_from`: where its file stays until a deferred flag rename (`dirty`)."""
        uid = meta.uid
        if uid > self._last_uid:
            self._last_uid = uid
        elif uid not in self.metas:
            self._ordered = False
        self.metas[uid] = meta
        self.files[uid] = (subdir, filename)
        if moved_from is not None:
            self.moved[uid] = moved_from
        elif self.moved:
            self.moved.pop(uid, None)
        self._snapshot = None

    def replace_many(self, metas: list[MessageMeta],
                     placed: list[tuple[str, tuple[str, str] | None]]) -> None:
        """`put` for messages the folder holds (a STORE): (name in cur/, `moved_from`)."""
        own_metas, own_files, moved = self.metas, self.files, self.moved
        for meta, (filename, moved_from) in zip(metas, placed, strict=True):
            own_metas[meta.uid] = meta
            own_files[meta.uid] = ("cur", filename)
            if moved_from is not None:
                moved[meta.uid] = moved_from
            else:
                moved.pop(meta.uid, None)
        self._snapshot = None

    def drop(self, uid: int) -> None:
        self.metas.pop(uid, None)
        self.files.pop(uid, None)
        self.moved.pop(uid, None)
        self._snapshot = None

    def file_path(self, uid: int) -> Path:
        subdir, filename = self.files[uid]
        return self.path / subdir / filename

    def file_str(self, uid: int) -> str:
        """`file_path` as a plain string: batches of 1,000 spend more in pathlib than in
        the system calls."""
        subdir, filename = self.files[uid]
        return f"{os.fspath(self.path)}/{subdir}/{filename}"

    def file_strs(self, uid: int) -> tuple[str, ...]:
        """Where the message's file may be: its row's name, then (a flag rename not done
        yet, see `dirty`) the name it had. KeyError: expunged."""
        first = self.file_str(uid)
        old = self.moved.get(uid)
        return (first,) if old is None else (first, f"{os.fspath(self.path)}/{old[0]}/{old[1]}")
