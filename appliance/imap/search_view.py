"""SEARCH's view of messages (`search_eval.MessageView`) over the selected folder.

Flags, sizes, dates and modseqs come from the index; headers and bodies are read only when a
key needs them. Parsed header fields are kept in a process-wide cache by (folder identity,
UID) -- messages never change once they have a UID -- so that repeated header searches over
a big mailbox do not reread every file; it is bounded (`HEADER_CACHE_SIZE` messages).
"""

from __future__ import annotations

import email.header
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from threading import Lock
from typing import TYPE_CHECKING

from appliance.imap.mime import parse_header_fields, parse_message
from appliance.imap.selected import SelectedMailbox
from appliance.storage.mailbox_api import AccountMail, MessageMeta

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

HEADER_CACHE_SIZE = 200_000
Headers = dict[str, list[str]]
_cache: OrderedDict[tuple[str, str, int, int], Headers] = OrderedDict()
_lock = Lock()


def decode_header_value(raw: bytes) -> str:
    """RFC 2047 words decoded, unfolded; raw 8-bit taken as UTF-8 (RFC 6532)."""
    text = raw.decode("utf-8", "replace").replace("\r", "").replace("\n", "")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return text


class StoredMessage:
    """One message as SEARCH sees it."""

    __slots__ = ("_account", "_folder", "_headers", "_key", "_text", "meta", "recent", "seq")

    def __init__(self, account: AccountMail, folder: str, key: tuple[str, str, int],
                 seq: int, meta: MessageMeta, recent: bool) -> None:
        self._account = account
        self._folder = folder
        self._key = key
        self.seq = seq
        self.meta = meta
        self.recent = recent
        self._headers: Headers | None = None
        self._text: str | None = None

    @property
    def uid(self) -> int:
        return self.meta.uid

    @property
    def flags(self) -> frozenset[str]:
        return self.meta.flags | {"\\Recent"} if self.recent else self.meta.flags

    @property
    def internal_date(self) -> float:
        return self.meta.internal_date

    @property
    def size(self) -> int:
        return self.meta.size

    @property
    def modseq(self) -> int:
        return self.meta.modseq

    def header(self, name: str) -> Sequence[str]:
        return self._all_headers().get(name.lower(), [])

    def headers_text(self) -> str:
        return "\n".join(f"{name}: {value}" for name, values in self._all_headers().items()
                         for value in values)

    def body_text(self) -> str:
        if self._text is None:
            content = self._account.read(self._folder, self.meta.uid)
            body = parse_message(content).body
            self._text = body.decode("utf-8", "replace")
        return self._text

    def _all_headers(self) -> Headers:
        if self._headers is None:
            full_key = (*self._key, self.meta.uid)
            with _lock:
                found = _cache.get(full_key)
            if found is None:
                content = self._account.read(self._folder, self.meta.uid)
                found = {}
                for item in parse_header_fields(content):
                    name = item.name.decode("ascii", "replace").lower()
                    found.setdefault(name, []).append(decode_header_value(item.unfolded))
                with _lock:
                    _cache[full_key] = found
                    while len(_cache) > HEADER_CACHE_SIZE:
                        _cache.popitem(last=False)
            self._headers = found
        return self._headers


def views(session: ImapSession, account: AccountMail,
          view: SelectedMailbox) -> Iterator[StoredMessage]:
    key = (account.address, view.name, view.uidvalidity)
    for seq, meta in enumerate(view.messages, start=1):
        if not view.is_expunged(meta.uid):
            yield StoredMessage(account, view.name, key, seq, meta, session.is_recent(meta.uid))
