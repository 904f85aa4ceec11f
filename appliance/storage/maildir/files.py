"""Message files of a folder: writing new ones (tmp/ -> fsync -> cur/), linking copies,
renaming for flag changes and unlinking, each made durable through `core.fsio`.

Callers hold the index write lock while a file appears in or leaves cur/, so another
process's sync never sees a file whose row is not yet written (or the reverse).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    plain `os` path strings relative to the folder's directory (`dir_fd`): a STORE on 1,000
    messages spent more in pathlib and path walks than in the renames themselves. The
    caller fsyncs cur/ once for the batch (`sync_dirs`) and then `close`s it.

    (Renaming in a helper thread while the index rows are written was tried: the GIL
    hand-offs between the two threads cost more than the overlap saved.)"""

    def __init__(self, folder: str, keywords: list[str]) -> None:
        self.keywords = keywords
        self._fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # A batch has few distinct (flags, old letters) pairs: work each one out once.
        self._letters: dict[tuple[frozenset[str], str], str] = {}

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FlagRenamer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def rename(self, where: tuple[str, str], wanted: frozenset[str]) -> str | None:
        """Rename the file at `where` (subdir, name) for `wanted`; its new name in cur/, or
        None if it is gone (renamed or removed by another tool)."""
        subdir, old = where
        base, sep, info = old.partition(":")
        letters = info[2:] if sep and info.startswith("2,") else ""
        key = (wanted, letters)
        new_letters = self._letters.get(key)
        if new_letters is None:
            new_letters = self._letters[key] = names.flags_to_letters(wanted, self.keywords,
                                                                      letters)
        filename = base + names.INFO_SEP + new_letters
        if filename != old or subdir != "cur":
            try:
                os.rename(subdir + "/" + old, "cur/" + filename, src_dir_fd=self._fd,
                          dst_dir_fd=self._fd)
            except FileNotFoundError:
                return None
        return filename


TRUSTED_NAME_SIZE = 64 * 1024 * 1024     # `,S=` values above this are not read at once


def read_message(path: str) -> bytes:
    """A message file's bytes as stored. With Dovecot's `,S=<size>` in the name (ours have
    it too), one read of size + 1 octets comes back short at the end of the file, so
    open, read and close are all it takes (no fstat, no read to see the end): a FETCH of
    many whole messages is mostly these calls. A wrong size only costs more reads."""
    name = path[path.rfind("/") + 1:]
    start = name.find(",S=") + 3
    end = start
    while end < len(name) and name[end].isdigit():
        end += 1
    if start == 2 or end == start or end - start > len(str(TRUSTED_NAME_SIZE)):
        return read_whole(path)
    size = int(name[start:end])
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


@functools.cache
def _syncer() -> ThreadPoolExecutor:
    """Threads that wait on directory fsyncs (made on first use, never at import)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="maildir-fsync")


def sync_dirs_started(*directories: Path) -> Callable[[], None]:
    """`sync_dirs` in a helper thread, so the caller can write its index rows meanwhile (an
    fsync holds no GIL, so nothing waits on anything); call the result to wait for it
    (it raises what the fsync raised). Commit nothing before it has returned."""
    return _syncer().submit(sync_dirs, *directories).result
