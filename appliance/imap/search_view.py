"""SEARCH's view of messages (`search_eval.MessageView`) over the selected folder.

Flags, sizes, dates and modseqs come from the index; headers and bodies are read only when a
key needs them. The decoded values of the header fields searched on are kept per account
object (which lives as long as the account is open in this process) by (folder, UIDVALIDITY,
UID, field name) -- messages never change once they have a UID -- so repeated searches on a
big mailbox neither reread nor reparse anything; only the fields actually searched are kept,
and each account's cache is bounded (`FIELD_CACHE_SIZE`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from threading import Lock
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from appliance.imap.mime import parse_header_fields
from appliance.imap.search_text import body_text, decode_header, header_text
from appliance.imap.selected import SelectedMailbox
from appliance.storage.mailbox_api import AccountMail, MessageMeta

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

FIELD_CACHE_SIZE = 50_000             # decoded field values kept per account
CACHED_ACCOUNTS = 32                  # accounts whose caches are kept (most recent first)
Headers = dict[str, list[str]]
FolderKey = tuple[str, int]               # folder, UIDVALIDITY
FieldCache = dict[tuple[str, int, int, str], tuple[str, ...]]
# Reads need no lock (one dict look-up); inserts and evictions (oldest first) take it.
_caches: WeakKeyDictionary[AccountMail, FieldCache] = WeakKeyDictionary()
_lock = Lock()


def _field_cache(account: AccountMail) -> FieldCache:
    """The account's cache; the least recently searched accounts' are dropped beyond
    `CACHED_ACCOUNTS`, so memory is bounded however many accounts search."""
    with _lock:
        cache = _caches.pop(account, None)
        if cache is None:
            cache = {}
            for ref in _caches.keyrefs():        # oldest first (insertion order)
                if len(_caches) < CACHED_ACCOUNTS:
                    break
                owner = ref()
                if owner is not None:
                    _caches.pop(owner, None)
        _caches[account] = cache           # re-inserted: now the most recent
        return cache


class _Search:
    """What every message of one SEARCH shares (one reference per message, not five)."""

    __slots__ = ("account", "batch", "cache", "folder", "key")

    def __init__(self, account: AccountMail, folder: str, key: FolderKey,
                 batch: HeaderBatch) -> None:
        self.account = account
        self.folder = folder
        self.key = key
        self.batch = batch
        self.cache = batch.cache


class StoredMessage:
    """One message as SEARCH sees it (made for each message of the folder per SEARCH: kept
    small, its header values looked up in the account's field cache first)."""

    __slots__ = ("_headers", "_search", "_text", "meta", "recent", "seq")

    def __init__(self, search: _Search, seq: int, meta: MessageMeta, recent: bool) -> None:
        self._search = search
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
        search = self._search
        lower = name.lower()
        field_key = (search.key[0], search.key[1], self.meta.uid, lower)
        cache = search.cache
        found = cache.get(field_key)
        if found is None:
            found = tuple(self._all_headers().get(lower, ()))
            with _lock:
                cache[field_key] = found
                while len(cache) > FIELD_CACHE_SIZE:
                    del cache[next(iter(cache))]
        return found

    def headers_text(self) -> str:
        return header_text(parse_header_fields(self._search.batch.header(self.meta.uid)))

    def body_text(self) -> str:
        """The decoded text parts (base64, quoted-printable and charsets undone)."""
        if self._text is None:
            search = self._search
            self._text = body_text(search.account.read(search.folder, self.meta.uid))
        return self._text

    def _all_headers(self) -> Headers:
        if self._headers is None:
            self._headers = {}
            for item in parse_header_fields(self._search.batch.header(self.meta.uid)):
                name = item.name.decode("ascii", "replace").lower()
                self._headers.setdefault(name, []).append(decode_header(item.value))
        return self._headers


class HeaderBatch:
    """The header blocks of a SEARCH, asked of the store `BATCH` messages at a time, in the
    order SEARCH walks the folder (the store keeps the blocks in its index, so a later
    search reads no message file). At most one batch is held: a search over a huge folder
    does not hold every header at once."""

    BATCH = 1000

    def __init__(self, account: AccountMail, folder: str, uids: list[int]) -> None:
        self._account = account
        self._folder = folder
        self._uids = uids
        self._index = {uid: i for i, uid in enumerate(uids)}
        self.cache = _field_cache(account)
        self._blocks: dict[int, bytes] = {}

    def header(self, uid: int) -> bytes:
        block = self._blocks.get(uid)
        if block is None:
            start = self._index.get(uid)
            wanted = ([uid] if start is None
                      else self._uids[start:start + self.BATCH])
            self._blocks = self._account.headers_many(self._folder, wanted)
            block = self._blocks.get(uid, b"")     # b"": expunged meanwhile
        return block


def views(session: ImapSession, account: AccountMail,
          view: SelectedMailbox) -> Iterator[StoredMessage]:
    live = list(enumerate(view.messages, start=1))
    if view.gone:
        live = [(seq, meta) for seq, meta in live if not view.is_expunged(meta.uid)]
    batch = HeaderBatch(account, view.name, [meta.uid for _seq, meta in live])
    search = _Search(account, view.name, (view.name, view.uidvalidity), batch)
    recent = frozenset() if session.rev2 else view.recent
    for seq, meta in live:
        yield StoredMessage(search, seq, meta, meta.uid in recent)
