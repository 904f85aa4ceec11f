"""SEARCH's view of messages (`search_eval.MessageView`) over the selected folder.

Flags, sizes, dates and modseqs come from the index; headers and bodies are read only when a
key needs them. The decoded values of the header fields searched on are kept in a
process-wide cache by (folder identity, UID, field name) -- messages never change once they
have a UID -- so repeated searches on a big mailbox neither reread nor reparse anything; only
the fields actually searched are kept, and the cache is bounded (`FIELD_CACHE_SIZE`).
"""

from __future__ import annotations

import email.header
from collections.abc import Iterator, Sequence
from threading import Lock
from typing import TYPE_CHECKING

from appliance.imap.mime import parse_header_fields, parse_message
from appliance.imap.selected import SelectedMailbox
from appliance.storage.mailbox_api import AccountMail, MessageMeta

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

FIELD_CACHE_SIZE = 100_000
Headers = dict[str, list[str]]
FolderKey = tuple[str, str, int]          # account, folder, UIDVALIDITY
# Reads need no lock (one dict look-up); inserts and evictions (oldest first) take it.
_cache: dict[tuple[str, str, int, int, str], tuple[str, ...]] = {}
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

    __slots__ = ("_account", "_batch", "_folder", "_headers", "_key", "_text", "meta", "recent",
                 "seq")

    def __init__(self, account: AccountMail, folder: str, key: tuple[str, str, int],
                 seq: int, meta: MessageMeta, recent: bool, batch: HeaderBatch) -> None:
        self._account = account
        self._folder = folder
        self._key = key
        self._batch = batch
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
        field_key = (*self._key, self.meta.uid, name.lower())
        found = _cache.get(field_key)
        if found is None:
            found = tuple(self._all_headers().get(name.lower(), ()))
            with _lock:
                _cache[field_key] = found
                while len(_cache) > FIELD_CACHE_SIZE:
                    del _cache[next(iter(_cache))]
        return found

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
            self._headers = {}
            for item in parse_header_fields(self._batch.header(self.meta.uid)):
                name = item.name.decode("ascii", "replace").lower()
                self._headers.setdefault(name, []).append(decode_header_value(item.unfolded))
        return self._headers


class HeaderBatch:
    """The header blocks of a whole SEARCH, asked of the store in one call the first time a
    message's headers are needed and not in the parsed cache (the store keeps the blocks
    in its index, so a later search reads no message file)."""

    def __init__(self, account: AccountMail, folder: str, key: tuple[str, str, int],
                 uids: list[int]) -> None:
        self._account = account
        self._folder = folder
        self._key = key
        self._uids = uids
        self._blocks: dict[int, bytes] | None = None

    def header(self, uid: int) -> bytes:
        if self._blocks is None:    # first message whose field is not cached: fetch them all
            self._blocks = self._account.headers_many(self._folder, self._uids)
        block = self._blocks.get(uid)
        if block is None:           # not asked for in the batch (or expunged meanwhile)
            block = self._account.headers_many(self._folder, [uid]).get(uid, b"")
        return block


def views(session: ImapSession, account: AccountMail,
          view: SelectedMailbox) -> Iterator[StoredMessage]:
    key = (account.address, view.name, view.uidvalidity)
    live = [(seq, meta) for seq, meta in enumerate(view.messages, start=1)
            if not view.is_expunged(meta.uid)]
    batch = HeaderBatch(account, view.name, key, [meta.uid for _seq, meta in live])
    recent = frozenset() if session.rev2 else view.recent
    for seq, meta in live:
        yield StoredMessage(account, view.name, key, seq, meta, meta.uid in recent, batch)
