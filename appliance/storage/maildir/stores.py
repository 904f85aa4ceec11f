"""`MaildirStores`: opens accounts' mail by address, one `MaildirAccount` per account per
process, shared by every IMAP and POP3 session of that account."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from appliance.storage.directory import Account
from appliance.storage.maildir.account import MaildirAccount


class AccountLookup(Protocol):
    """What `MaildirStores` needs from the directory (`SqliteDirectory` has it)."""

    def get_account(self, address: str) -> Account:
        ...


class MaildirStores:
    """Opens accounts' mail under `data_dir`, one `MaildirAccount` per account per process."""

    def __init__(self, data_dir: Path, directory: AccountLookup,
                 messages_limit: int | None = None,
                 opener: Callable[..., MaildirAccount] = MaildirAccount) -> None:
        self._data_dir = data_dir
        self._directory = directory
        self._messages_limit = messages_limit
        self._opener = opener
        self._lock = threading.Lock()
        self._open: dict[str, MaildirAccount] = {}
        self._junk_listeners: list[Callable[..., None]] = []

    def add_junk_listener(self, listener: Callable[..., None]) -> None:
        """Register a `mailbox_api.JunkListener` on every account, open now or later (the
        spam filter learns from Junk moves, issue 5)."""
        with self._lock:
            self._junk_listeners.append(listener)
            for mail in self._open.values():
                mail.add_junk_listener(listener)

    def open(self, address: str) -> MaildirAccount:
        """The account's mail. KeyError when there is no such account."""
        try:
            account = self._directory.get_account(address)
        except ValueError as exc:        # DirectoryError, AddressError
            raise KeyError(address) from exc
        with self._lock:
            mail = self._open.get(account.address)
            if mail is None:
                mail = self._opener(account.address, self._data_dir / account.maildir,
                                    account.quota_bytes, self._messages_limit)
                for listener in self._junk_listeners:
                    mail.add_junk_listener(listener)
                self._open[account.address] = mail
            mail.quota_bytes = account.quota_bytes       # the admin may have changed it
            return mail

    def iter_open(self) -> Iterator[MaildirAccount]:
        with self._lock:
            opened = list(self._open.values())
        yield from opened

    def close(self) -> None:
        with self._lock:
            for mail in self._open.values():
                mail.close()
            self._open.clear()
