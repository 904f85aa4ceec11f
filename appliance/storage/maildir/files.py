"""Message files of a folder: writing new ones (tmp/ -> fsync -> cur/), linking copies,
renaming for flag changes and unlinking, each made durable through `core.fsio`.

Callers hold the index write lock while a file appears in or leaves cur/, so another
process's sync never sees a file whose row is not yet written (or the reverse).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from appliance.core.fsio import DIRECTORY_SYNC, unique_name, write_new_file
from appliance.storage.maildir import flags as names


def new_base(stored_size: int, crlf_size: int) -> str:
    """A fresh base name with Dovecot's size fields (S= on disk, W= RFC822.SIZE)."""
    return f"{unique_name()},S={stored_size},W={crlf_size}"


def stage(folder: Path, content: bytes, internal_date: float | None) -> tuple[Path, str]:
    """Write an APPENDed message into tmp/ (LF line ends, fsync'ed); (temp path, base).

    The file's mtime is the message's internal date, as Dovecot and Courier keep it."""
    data = names.to_lf(content)
    base = new_base(len(data), names.crlf_size(data))
    temp = folder / "tmp" / base
    write_new_file(temp, data)
    if internal_date is not None:
        os.utime(temp, (internal_date, internal_date))
    return temp, base


def publish(temp: Path, folder: Path, filename: str) -> None:
    """Rename a staged file into cur/ and fsync the directory."""
    os.rename(temp, folder / "cur" / filename)
    DIRECTORY_SYNC.sync(folder / "cur")


def discard(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def link_copy(source: str | Path, folder: Path, filename: str, subdir: str = "cur") -> None:
    """Put a copy of `source` into `folder`/`subdir`/ as `filename`: a hard link when
    possible (same inode, so the internal date is shared), else a written copy with the same
    mtime. The caller fsyncs the directory once for a batch (`sync_dirs`)."""
    target = f"{os.fspath(folder)}/{subdir}/{filename}"     # plain strings: see FlagRenamer
    try:
        os.link(source, target)
        return
    except FileNotFoundError:
        raise
    except OSError:
        pass                       # EXDEV, EMLINK, EPERM: fall back to a copy
    data = Path(source).read_bytes()
    mtime = os.stat(source).st_mtime
    temp = folder / "tmp" / names.split_name(filename)[0]
    write_new_file(temp, data)
    os.utime(temp, (mtime, mtime))
    os.rename(temp, target)


class FlagRenamer:
    """Renames message files for new flags (a file in new/ moves to cur/ on the way), with
    plain `os` path strings: a STORE on 1,000 messages spent more in pathlib than in the
    renames themselves. The caller fsyncs cur/ once for the batch (`sync_dirs`)."""

    def __init__(self, folder: str, keywords: list[str]) -> None:
        self.folder = folder + "/"
        self.cur = folder + "/cur/"
        self.keywords = keywords
        # A batch has few distinct (flags, old letters) pairs: work each one out once.
        self._letters: dict[tuple[frozenset[str], str], str] = {}

    def rename(self, where: tuple[str, str], wanted: frozenset[str]) -> str | None:
        """Rename the file at `where` (subdir, name) for `wanted`; its new name in cur/, or
        None if it is gone (renamed or removed by another tool)."""
        subdir, old = where
        base, letters = names.split_name(old)
        key = (wanted, letters or "")
        new_letters = self._letters.get(key)
        if new_letters is None:
            new_letters = names.flags_to_letters(wanted, self.keywords, key[1])
            self._letters[key] = new_letters
        filename = names.file_name(base, new_letters)
        if filename != old or subdir != "cur":
            try:
                os.rename(self.folder + subdir + "/" + old, self.cur + filename)
            except FileNotFoundError:
                return None
        return filename


def unlink(path: str | Path) -> None:
    """Remove a message file; one already gone (another tool removed it) is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sync_dirs(*directories: Path) -> None:
    """fsync each directory once (group commit with concurrent writers)."""
    for directory in dict.fromkeys(directories):
        DIRECTORY_SYNC.sync(directory)
