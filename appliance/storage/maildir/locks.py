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
