"""Delivery into Maildirs as one transaction (tmp/ -> fsync -> new/ -> fsync dir).

One message for several mailboxes is written and fsync'ed once, hard-linked into the other
mailboxes' tmp/ (copied when a link is impossible), then renamed into each new/. If any step
fails, every file this delivery made is removed again and the caller gets a DeliveryError, so
the client sees a temporary failure and no half-delivered copy stays behind.

A message the spam check sends to Junk is delivered into each mailbox's `.Junk` folder (the
folder every account gets with the RFC 6154 \\Junk attribute), made on demand with the
Maildir++ marker when the account has not been opened yet.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.core.errors import DeliveryError
from appliance.core.fsio import DIRECTORY_SYNC, unique_name, write_new_file
from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.flags import crlf_size
from appliance.storage.maildir.folders import dir_name, make_folder_dir
from appliance.storage.maildir.usage import delivery_totals

SUBDIRS = ("cur", "new", "tmp")
STALE_TMP_SECONDS = 36 * 3600   # the Maildir convention for abandoned tmp/ files
TEMP_FAILURE = "451 4.3.0 Temporary failure storing the message, please retry"


def create_maildir(path: Path) -> None:
    """Create a Maildir (cur, new, tmp) with private permissions; no-op if it exists."""
    for sub in SUBDIRS:
        (path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)


class MaildirStore:
    """The embedded MailStore: Maildirs under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def maildir(self, mailbox: Mailbox) -> Path:
        return self._data_dir / mailbox.maildir

    def totals_for_delivery(self, mailbox: Mailbox) -> tuple[int, int]:
        """(octets, messages) the mailbox holds, for the storage and message quotas."""
        return delivery_totals(self.maildir(mailbox))

    def deliver(self, message: bytes, mailboxes: Sequence[Mailbox], folder: str = "") -> None:
        """Store `message` in every mailbox durably, or raise DeliveryError leaving nothing.

        `folder`: "" for the INBOX, else a folder name (e.g. "Junk") made when missing.
        """
        # Dovecot's names: S= is the file size, W= the RFC822.SIZE IMAP reports (CRLF).
        name = f"{unique_name()},S={len(message)},W={crlf_size(message)}"
        made: list[Path] = []
        try:
            temps = self._write_temps(message, name, mailboxes, made, folder)
            finals = [self._publish(temp, made) for temp in temps]
            for final in finals:
                DIRECTORY_SYNC.sync(final.parent)
        except OSError as exc:
            _remove_all(made)
            raise DeliveryError(TEMP_FAILURE, f"maildir write failed: {exc}") from exc

    def _write_temps(self, message: bytes, name: str, mailboxes: Sequence[Mailbox],
                     made: list[Path], folder: str) -> list[Path]:
        temps: list[Path] = []
        for mailbox in mailboxes:
            root = self.maildir(mailbox)
            if folder:
                root = root / dir_name(folder)
                if not (root / "tmp").is_dir():
                    create_maildir(self.maildir(mailbox))
                    make_folder_dir(root, inbox=False)
            temp = root / "tmp" / name
            if not temps:
                _in_maildir(temp, write_new_file, temp, message)
            else:
                _in_maildir(temp, _link_or_copy, temps[0], temp, message)
            made.append(temp)
            temps.append(temp)
        return temps

    @staticmethod
    def _publish(temp: Path, made: list[Path]) -> Path:
        final = temp.parent.parent / "new" / temp.name
        _in_maildir(temp, os.rename, temp, final)
        made[made.index(temp)] = final
        return final


def _in_maildir(temp: Path, step: Callable[..., object], *args: object) -> None:
    """Run `step(*args)` on `temp`, a tmp/ file; if a folder is missing, make the Maildir, retry.

    Accounts get their Maildir when they are created, so checking (3 mkdir + 3 stat calls)
    before every delivery would cost syscalls for nothing; a missing one is made on demand.
    """
    try:
        step(*args)
    except FileNotFoundError:
        create_maildir(temp.parent.parent)
        step(*args)


def _link_or_copy(source: Path, target: Path, message: bytes) -> None:
    try:
        os.link(source, target)
    except OSError:
        write_new_file(target, message)


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def remove_stale_temps(maildir: Path, now: float | None = None) -> int:
    """Delete tmp/ files older than 36 hours (left by a crash); return how many."""
    cutoff = (time.time() if now is None else now) - STALE_TMP_SECONDS
    removed = 0
    for entry in os.scandir(maildir / "tmp"):
        if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
            os.unlink(entry.path)
            removed += 1
    return removed


def sweep_stale_temps(mail_root: Path) -> int:
    """Run `remove_stale_temps` over every Maildir (and Maildir++ folder) under `mail_root`."""
    removed = 0
    for tmp in mail_root.glob("*/*/tmp"):
        removed += remove_stale_temps(tmp.parent)
    for tmp in mail_root.glob("*/*/.*/tmp"):
        removed += remove_stale_temps(tmp.parent)
    return removed
