"""The contract between the mailbox protocols (IMAP, POP3) and the mail store of one account.

The IMAP and POP3 sessions see an account's mail only through `AccountMail`; the embedded
implementation is `storage.maildir.account.MaildirAccount` (Maildir++ plus a per-account
SQLite index), and a scale-out store would implement the same Protocol (DESIGN.md,
"Boundaries"). Everything here is plain data; no I/O.

Conventions every implementation keeps:

- Folder names are IMAP names in UTF-8 with `/` as the hierarchy delimiter (`INBOX`,
  `Archive/2026`); `INBOX` is case-insensitive, every other name is case-sensitive. The
  protocols convert to modified UTF-7 for IMAP4rev1 clients themselves.
- Flags are IMAP flags: the system flags in `SYSTEM_FLAGS` and keywords (atoms without a
  backslash). `\\Recent` is never stored; a session learns which messages are recent for it
  from `FolderSnapshot.recent`.
- Message bytes handed out are exactly what IMAP sends: CRLF line ends. `size` is the size
  of those bytes (RFC822.SIZE), whatever the file on disk uses.
- Every mutating call is durable when it returns (the caller then answers `OK`): the files
  and the index are fsync'ed.
- Methods are blocking (file and SQLite I/O); sessions call them from a thread pool. One
  `AccountMail` may be used from several threads; several processes may open the same
  account at once (the index is shared through SQLite WAL and the Maildir itself).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

INBOX = "INBOX"
DELIMITER = "/"
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})


class SpecialUse(enum.Enum):
    """RFC 6154 special-use attributes; every account gets one folder of each at creation."""

    DRAFTS = "\\Drafts"
    SENT = "\\Sent"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"


# The folders made for a new account (name, use), created on first open when missing.
DEFAULT_FOLDERS: tuple[tuple[str, SpecialUse], ...] = (
    ("Drafts", SpecialUse.DRAFTS), ("Sent", SpecialUse.SENT), ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK), ("Archive", SpecialUse.ARCHIVE))


class FlagOperation(enum.Enum):
    """STORE's three forms."""

    REPLACE = "replace"      # FLAGS
    ADD = "add"              # +FLAGS
    REMOVE = "remove"        # -FLAGS


# -- errors: each maps to one IMAP response code (RFC 5530) and a POP3 -ERR ------------------

class MailboxError(Exception):
    """A refused mailbox operation; `code` is the IMAP response code to send with NO."""

    code = "CANNOT"


class NoSuchFolderError(MailboxError):
    code = "NONEXISTENT"      # APPEND/COPY/MOVE to it answer TRYCREATE instead


class FolderExistsError(MailboxError):
    code = "ALREADYEXISTS"


class InvalidFolderNameError(MailboxError):
    code = "CANNOT"           # `..`, empty components, NUL, control characters, too long


class OverQuotaError(MailboxError):
    code = "OVERQUOTA"


class FolderInUseError(MailboxError):
    code = "INUSE"            # e.g. a second POP3 session on one maildrop


# -- values --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FolderInfo:
    """One folder as LIST shows it."""

    name: str
    special_use: SpecialUse | None = None
    subscribed: bool = False
    has_children: bool = False


class MessageMeta(NamedTuple):
    """What the index knows about one message without opening it. A named tuple, not a
    frozen dataclass: a STORE on 1,000 messages and every folder load make one per message,
    and a tuple is made in a third of the time and half the memory (80 octets, not 168)."""

    uid: int
    flags: frozenset[str]
    modseq: int
    internal_date: float       # seconds since the epoch (delivery or APPEND date)
    size: int                  # RFC822.SIZE: octets with CRLF line ends


@dataclass(frozen=True)
class FolderSnapshot:
    """A folder as of one sync: what SELECT reports and what a session diffs against."""

    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    messages: tuple[MessageMeta, ...]      # ascending UID; sequence number = index + 1
    recent: frozenset[int] = frozenset()   # UIDs this sync claimed as \Recent (claim_recent)


@dataclass(frozen=True)
class FolderStatus:
    """STATUS without selecting (RFC 9051 6.3.11, STATUS=SIZE RFC 8438, CONDSTORE)."""

    messages: int
    uidnext: int
    uidvalidity: int
    unseen: int
    deleted: int
    size: int
    highest_modseq: int
    recent: int = 0


@dataclass(frozen=True)
class StoreResult:
    """What STORE changed, and which messages UNCHANGEDSINCE kept it from changing."""

    changed: tuple[MessageMeta, ...]       # new flags and modseq, ascending UID
    modified: tuple[int, ...] = ()         # UIDs refused by unchanged_since (RFC 7162 3.1.3)


@dataclass(frozen=True)
class CopyResult:
    """COPYUID / APPENDUID data (RFC 4315): the target's UIDVALIDITY and UID pairs."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    target_uids: tuple[int, ...]


@dataclass(frozen=True)
class QuotaUsage:
    """RFC 9208 STORAGE (in octets here; IMAP reports KiB) and MESSAGE resources."""

    storage_used: int
    storage_limit: int | None     # None: no limit
    messages_used: int
    messages_limit: int | None


@dataclass(frozen=True)
class JunkMove:
    """Emitted when messages are moved or copied into or out of the Junk folder, so the
    spam filter can learn from them (issue 5)."""

    account: str                   # the account's address
    to_junk: bool                  # True: marked as spam; False: marked as not spam
    folder: str                    # the folder the copies are in now (Junk, or out of it)
    uids: tuple[int, ...]          # the copies' UIDs in that folder


JunkListener = Callable[[JunkMove], None]


class AccountMail(Protocol):
    """One account's folders and messages (see the module docstring for conventions)."""

    address: str

    # folders
    def folders(self) -> list[FolderInfo]:
        """Every folder, INBOX first, then by name."""
        ...

    def create_folder(self, name: str, special_use: SpecialUse | None = None) -> None:
        """Create `name` (and missing parents). FolderExistsError, InvalidFolderNameError."""
        ...

    def delete_folder(self, name: str) -> None:
        """Delete `name` and its messages; its children stay. INBOX cannot be deleted."""
        ...

    def rename_folder(self, old: str, new: str) -> None:
        """Rename with children; renaming INBOX moves its messages to `new` (RFC 9051)."""
        ...

    def set_subscribed(self, name: str, subscribed: bool) -> None:
        ...

    # reading
    def sync(self, name: str, claim_recent: bool = False) -> FolderSnapshot:
        """Bring the index up to date with the Maildir (new files get UIDs, vanished ones
        are expunged, renamed ones change flags) and return the folder as it is now.
        With `claim_recent`, messages no session has seen yet become this caller's
        `recent` (IMAP4rev1 \\Recent). NoSuchFolderError."""
        ...

    def changed(self, name: str, since: object) -> tuple[bool, object]:
        """Cheap check for IDLE/NOOP: whether anything may have changed since the token
        returned last time (pass None the first time), and the new token."""
        ...

    def status(self, name: str) -> FolderStatus:
        ...

    def read(self, name: str, uid: int) -> bytes:
        """The message with CRLF line ends. NoSuchFolderError; KeyError when expunged."""
        ...

    def read_many(self, name: str, uids: Sequence[int]) -> Iterator[tuple[int, bytes | None]]:
        """`read` for many messages (FETCH of whole messages): (uid, bytes with CRLF line
        ends) for each of `uids`, in the order given, with None for an expunged one. Where
        the files are is looked up once for the batch, not once per message; the bytes
        come as they are read, so a caller may stop early. A message whose file was renamed
        meanwhile (a flag change) is still found. NoSuchFolderError, before anything is
        yielded."""
        ...

    def expunged_since(self, name: str, modseq: int) -> list[int]:
        """UIDs expunged after `modseq` (QRESYNC VANISHED (EARLIER)), ascending."""
        ...

    def get_cached(self, name: str, uid: int, key: str) -> str | None:
        """A value the protocols cached for a message (e.g. its BODYSTRUCTURE)."""
        ...

    def get_cached_many(self, name: str, uids: Iterable[int], key: str) -> dict[int, str]:
        """`get_cached` for many messages in one step (e.g. FETCH 1:* ENVELOPE): uid: value
        for each of `uids` that has `key` cached; the others are left out. NoSuchFolderError."""
        ...

    def put_cached(self, name: str, uid: int, key: str, value: str) -> None:
        """Cache a derived value; not durable (the cache can always be rebuilt)."""
        ...

    def headers_many(self, name: str, uids: Iterable[int]) -> dict[int, bytes]:
        """The raw header block of each of `uids` (for SEARCH on header fields): exactly
        BODY[HEADER] (RFC 9051 6.4.5), i.e. up to and including the first empty line (the
        whole message when there is none), CRLF line ends. Expunged UIDs are left out.
        The store keeps the blocks it read in its cache, so asking again for the same
        messages reads no message file. NoSuchFolderError."""
        ...

    # writing
    def append(self, name: str, content: bytes, flags: frozenset[str] = frozenset(),
               internal_date: float | None = None) -> CopyResult:
        """Store a new message (any line ends in, CRLF out). NoSuchFolderError, OverQuotaError."""
        ...

    def store_flags(self, name: str, uids: Sequence[int], operation: FlagOperation,
                    flags: frozenset[str], unchanged_since: int | None = None) -> StoreResult:
        ...

    def copy(self, name: str, uids: Sequence[int], target: str) -> CopyResult:
        """Copy with flags (not \\Recent); OverQuotaError, NoSuchFolderError for the target."""
        ...

    def move(self, name: str, uids: Sequence[int], target: str) -> CopyResult:
        """Copy then expunge the sources (RFC 6851), durable as one step for the client."""
        ...

    def expunge(self, name: str, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only among `uids` when given: UID EXPUNGE);
        return the removed UIDs, ascending."""
        ...

    def remove(self, name: str, uids: Sequence[int]) -> list[int]:
        """Remove these messages whatever their flags (POP3 DELE at QUIT)."""
        ...

    # account-wide
    def quota(self) -> QuotaUsage:
        ...

    def exclusive(self, purpose: str) -> AbstractContextManager[None]:
        """Hold the account's lock for `purpose` (e.g. "pop3") across processes;
        FolderInUseError when someone else holds it."""
        ...

    def try_lock(self) -> bool:
        """Take the lock that serialises this object's calls within the process, only if
        it is free right now: True when taken (give it back with `unlock`), False at once
        otherwise; never waits. For an event loop that may run a store call itself only
        when it cannot block (imap/server_inline.py). The holder's own calls go on
        working (the lock is re-entrant); other threads' calls wait for `unlock`.
        Within one such hold, a `sync` may take the `changed` check made just before for
        the same folder instead of looking again (once; any write of ours drops it): a
        change from outside landing in between is seen by the next look."""
        ...

    def unlock(self) -> None:
        """Give back the lock `try_lock` took (from the thread that took it)."""
        ...

    def add_junk_listener(self, listener: JunkListener) -> None:
        ...

    def close(self) -> None:
        ...


class MailStores(Protocol):
    """Opens accounts' mail (one `AccountMail` per account, shared by its sessions)."""

    def open(self, address: str) -> AccountMail:
        """The account's mail; creates the Maildir and default folders when missing.
        KeyError when there is no such account."""
        ...

    def iter_open(self) -> Iterator[AccountMail]:
        ...
