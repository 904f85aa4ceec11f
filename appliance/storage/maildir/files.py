"""Message files of a folder: writing new ones (tmp/ -> fsync -> cur/), linking copies,
naming and renaming for flag changes and unlinking, each made durable through `core.fsio`.

Callers hold the index write lock while a file appears in or leaves cur/, so another
process's sync never sees a file whose row is not yet written (or the reverse).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from appliance.core.fsio import DIRECTORY_SYNC, read_whole, unique_name, write_new_file
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
    target = f"{os.fspath(folder)}/{subdir}/{filename}"     # plain strings: see Mover
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


class FlagNamer:
    """The name a message file gets for new flags (in cur/: a file in new/ moves there on the
    way). A batch has few distinct (flags, old letters) pairs, so each is worked out once.
    The renames themselves come later, off the reply path (`dirty`)."""

    def __init__(self, keywords: list[str]) -> None:
        self.keywords = keywords
        self._suffixes: dict[tuple[frozenset[str], str], str] = {}

    def name(self, old: str, wanted: frozenset[str]) -> str:
        """The new name in cur/ for the file named `old` (in cur/ or new/)."""
        base, sep, info = old.partition(":")
        key = (wanted, info)
        suffix = self._suffixes.get(key)
        if suffix is None:
            letters = info[2:] if sep and info.startswith("2,") else ""
            suffix = self._suffixes[key] = names.INFO_SEP + names.flags_to_letters(
                wanted, self.keywords, letters)
        return base + suffix


class Mover:
    """Renames within one folder with plain path strings relative to its directory
    (`dir_fd`): for batches of 1,000, pathlib and path walks cost more than the renames."""

    def __init__(self, folder: str) -> None:
        self._fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Mover:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def move(self, old: tuple[str, str], new: tuple[str, str]) -> bool | None:
        """Rename (subdir, name) `old` to `new`: True when renamed, False when the file is
        under `new` already, None when it is under neither."""
        source, target = f"{old[0]}/{old[1]}", f"{new[0]}/{new[1]}"
        try:
            os.rename(source, target, src_dir_fd=self._fd, dst_dir_fd=self._fd)
            return True
        except FileNotFoundError:
            pass
        try:
            os.stat(target, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return False


TRUSTED_NAME_SIZE = 64 * 1024 * 1024     # `,S=` values above this are not read at once
_DIGITS = re.compile(rf"[0-9]{{1,{len(str(TRUSTED_NAME_SIZE))}}}(?![0-9])")


def read_message(path: str) -> bytes:
    """A message file's bytes as stored. With Dovecot's `,S=<size>` in the name (ours have
    it too), one read of size + 1 octets comes back short at the end of the file, so
    open, read and close are all it takes (no fstat, no read to see the end): a FETCH of
    many whole messages is mostly these calls. A wrong size only costs more reads."""
    at = path.find(",S=", path.rfind("/") + 1)           # in the file's name only
    found = _DIGITS.match(path, at + 3) if at >= 0 else None
    if found is None:
        return read_whole(path)
    size = int(found.group())
    if size > TRUSTED_NAME_SIZE:            # a name from another tool: do not allocate it
        return read_whole(path)
    return read_whole(path, size)


def unlink(path: str | Path) -> None:
    """Remove a message file; one already gone (another tool removed it) is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sync_dirs(*directories: Path) -> None:
    """fsync each directory once (group commit with concurrent writers)."""
    for directory in dict.fromkeys(directories):
        DIRECTORY_SYNC.sync(directory)
