"""File-system safety: atomic writes, fsync of files and directories, group commit, safe names.

This is the one module that decides how bytes reach the disk durably. A directory fsync is
shared between concurrent writers (group commit): every caller that renamed an entry into a
directory waits for one fsync that started after its rename, so many messages arriving
together cost one directory flush instead of one each.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Generic, TypeVar, cast

T = TypeVar("T")
_SAFE_EXTRA = frozenset("-_+=@,~")
_counter = count()


def fsync_dir(path: Path) -> None:
    """fsync a directory so entries created or renamed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` exclusively with exactly `mode` (whatever the umask: a 0644 file
    must be readable by the other users it is for), write `data` and fsync it (not its
    directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(path)
        raise
    os.close(fd)


def read_whole(path: str, size: int | None = None) -> bytes:
    """A whole file, with plain os calls: readers of many small files (FETCH of many
    messages) spend more in pathlib and buffered file objects than in the reads.
    `size`: what the caller knows the file holds (a Maildir `,S=`), saving the fstat; one
    read of size + 1 octets comes back short at the end of a regular file. A wrong size
    only costs more reads."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        expected = os.fstat(fd).st_size if size is None else size
        chunks = [os.read(fd, expected + 1)]
        if len(chunks[0]) <= expected:
            return chunks[0]
        while chunks[-1]:                       # read to the end: it is bigger, or grew
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably (temp file, fsync, rename, fsync dir)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}.tmp")
    write_new_file(temp, data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    fsync_dir(path.parent)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def unique_name() -> str:
    """A name unique on this host: time, microseconds, pid, a counter (Maildir style).

    The microseconds have six digits: messages stamped in one coarse mtime tick get their
    UIDs in name order, so names must sort as their times do (M99873 after M100231 would
    not)."""
    now = time.time()
    pid, host = _identity()
    return f"{int(now)}.M{int(now * 1e6) % 1_000_000:06d}P{pid}Q{next(_counter)}.{host}"


@functools.cache
def _identity() -> tuple[int, str]:
    """(pid, host name): asked once per process, not twice per message."""
    return os.getpid(), socket.gethostname().replace("/", "\\057").replace(":", "\\072")


os.register_at_fork(after_in_child=_identity.cache_clear)    # a forked child has its own pid


def safe_component(name: str) -> str:
    """Turn any text into one safe path component (no separators, no leading dot, no NUL).

    Characters outside letters, digits and a few punctuation marks become `%XX` (UTF-8),
    so distinct names stay distinct and the result is readable for ordinary names.
    """
    out: list[str] = []
    for index, char in enumerate(name):
        plain = char.isascii() and (char.isalnum() or char in _SAFE_EXTRA
                                    or (char == "." and index > 0))
        # surrogatepass: lone surrogates (surrogateescape input) get distinct escapes too
        raw = char.encode("utf-8", "surrogatepass")
        out.append(char if plain else "".join(f"%{b:02X}" for b in raw))
    # "" needs a name no other input gives: a lone "%" (every other "%" starts "%XX").
    return "".join(out) or "%"


class DirectorySync:
    """Group commit for directory fsyncs, shared by all threads of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._dirty: dict[Path, int] = {}
        self._synced: dict[Path, int] = {}
        self._running: set[Path] = set()

    def sync(self, directory: Path) -> None:
        """Return once an fsync of `directory` that began after this call has finished."""
        with self._lock:
            ticket = self._dirty[directory] = self._dirty.get(directory, 0) + 1
            while self._synced.get(directory, 0) < ticket:
                if directory in self._running:
                    self._changed.wait()
                    continue
                self._running.add(directory)
                target = self._dirty[directory]
                self._lock.release()
                try:
                    fsync_dir(directory)
                finally:
                    self._lock.acquire()
                    self._running.discard(directory)
                    self._changed.notify_all()
                self._synced[directory] = max(self._synced.get(directory, 0), target)


DIRECTORY_SYNC = DirectorySync()


class _Slot:
    """One caller's item waiting in a GroupCommit, and how its batch ended."""

    __slots__ = ("done", "error", "item")

    def __init__(self, item: object) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Group commit for any durable batch write (e.g. queue rows): one commit, many callers.

    Each `submit` waits until a call of `commit(items)` that includes its item has returned.
    While one commit runs, the items submitted meanwhile pile up and the next leader commits
    them all at once, so N concurrent callers cost about two commits instead of N. A small
    `window` (seconds) lets a leader wait for more items first; 0 batches only what piles up.
    """

    def __init__(self, commit: Callable[[list[T]], None], window: float = 0.0) -> None:
        self._commit = commit
        self._window = window
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: list[_Slot] = []
        self._leading = False

    def submit(self, item: T) -> None:
        """Return once `item` is committed; raise the commit's exception if it failed."""
        slot = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            while not slot.done:
                if self._leading:
                    self._changed.wait()
                else:
                    self._lead()
        if slot.error is not None:
            raise slot.error

    def _lead(self) -> None:
        """Commit everything pending (called with the lock held, returns with it held)."""
        self._leading = True
        batch: list[_Slot] = []
        error: BaseException | None = None
        self._lock.release()
        try:
            if self._window > 0:
                time.sleep(self._window)
            with self._lock:
                batch, self._pending = self._pending, []
            self._commit([cast(T, slot.item) for slot in batch])
        except BaseException as exc:   # handed to every caller of the batch
            error = exc
        finally:
            self._lock.acquire()
            for slot in batch:
                slot.done, slot.error = True, error
            self._leading = False
            self._changed.notify_all()
