"""Account-wide exclusive locks across processes: fcntl.flock on a file in the Maildir root.

flock locks belong to an open file description, so two sessions of one process conflict
just as two processes do (e.g. two POP3 sessions on one maildrop, RFC 1939 8).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from appliance.core.fsio import safe_component
from appliance.storage.mailbox_api import FolderInUseError


@contextlib.contextmanager
def exclusive(root: Path, purpose: str) -> Iterator[None]:
    """Hold `mailstead-<purpose>.lock` in `root` (non-blocking).

    Raises:
        FolderInUseError: another holder has it.
    """
    path = root / f"mailstead-{safe_component(purpose)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise FolderInUseError(f"the account is in use ({purpose})") from exc
        yield
    finally:
        os.close(fd)             # closing the descriptor releases the lock


INTENTS_LOCK = "mailstead-intents.lock"


class IntentGuard:
    """Tells a live COPY/MOVE intent (see `intents`) from one left by a crash.

    An operation holds `mailstead-intents.lock` shared from just before it records its
    intent until the intent is gone; a process dies with its descriptors, so when nobody
    holds the lock, every intent in the index is a crash's leftover. Only ever asked while
    holding the index write lock, so no operation can record a new intent meanwhile."""

    def __init__(self, root: Path) -> None:
        self._path = root / INTENTS_LOCK
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def hold(self) -> None:
        """Take the lock shared (an operation is under way in this object)."""
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def none_running(self) -> bool:
        """True when no operation holds the lock, this object's own included (a second
        open file description conflicts with ours, as with another process's)."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def close(self) -> None:
        os.close(self._fd)
