"""The storage contracts: `Directory` (who receives mail), `MailStore` (where it lands) and
`Queue` (what must still be sent out).

Implementations: `directory.SqliteDirectory`, `maildir.store.MaildirStore` and
`appliance.outbound.spool.Spool`; a scale-out
implementation plugs in behind the same Protocols (DESIGN.md, "Boundaries"). The mailbox
side that IMAP and POP3 read and change (`AccountMail`, `MailStores`) has its own contract
module, `mailbox_api`, because it is large.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.core.addresses import Address
from appliance.outbound.types import OutboundRecipient


@dataclass(frozen=True)
class Mailbox:
    """A local account that can receive mail."""

    account_id: int
    address: str
    maildir: Path          # relative to the data directory
    quota_bytes: int = 0   # the account's storage quota; 0: none


class RecipientStatus(enum.Enum):
    """What the directory decided about one envelope recipient."""

    DELIVER = "deliver"        # at least one mailbox or remote target
    UNKNOWN = "unknown"        # a local domain, but no such user
    DISABLED = "disabled"      # the account exists but does not take mail
    NOT_LOCAL = "not_local"    # not one of our domains


@dataclass(frozen=True)
class Resolution:
    """Where mail for one envelope recipient goes after aliases are expanded."""

    status: RecipientStatus
    mailboxes: tuple[Mailbox, ...] = ()
    remote: tuple[str, ...] = ()


class Directory(Protocol):
    """Read side of the account directory, as the mail listeners use it."""

    def is_local_domain(self, domain: str) -> bool:
        """True if `domain` (a lower-case A-label) is one of ours."""
        ...

    def resolve(self, address: Address) -> Resolution:
        """Expand aliases and find the mailboxes and remote targets for `address`."""
        ...


class MailStore(Protocol):
    """Durable delivery of one message into several mailboxes, all or nothing."""

    def deliver(self, message: bytes, mailboxes: Sequence[Mailbox], folder: str = "") -> None:
        """Store `message` in every mailbox durably, or raise DeliveryError leaving nothing.
        `folder`: "" for the INBOX, else the folder (e.g. "Junk", made when missing)."""
        ...

    def totals_for_delivery(self, mailbox: Mailbox) -> tuple[int, int]:
        """(octets, messages) the mailbox holds, for its storage and message quotas."""
        ...


class RecipientState(enum.Enum):
    """Where one queued recipient stands."""

    QUEUED = "queued"          # waiting for its first or next attempt
    DELIVERED = "delivered"    # a peer took it (2xx); kept until the message is finished
    FAILED = "failed"          # given up (5xx or expired); its bounce was created


@dataclass(frozen=True)
class NewMessage:
    """The envelope of a message being queued (RFC 3461 parameters included)."""

    queue_id: str
    sender: str                                   # "" is the null reverse-path
    recipients: tuple[OutboundRecipient, ...]     # unique addresses
    envid: str | None = None
    ret: str | None = None                        # "FULL", "HDRS" or None
    smtputf8: bool = False
    body_8bit: bool = False


@dataclass(frozen=True)
class QueuedRecipient:
    """One recipient row of the queue."""

    address: str
    notify: tuple[str, ...]
    orcpt: str | None
    state: RecipientState
    attempts: int
    next_try: float                 # seconds since the epoch
    last_reply: str                 # the last reply or reason, "" before the first attempt
    remote_host: str | None
    delay_warned: bool

    def outbound(self) -> OutboundRecipient:
        return OutboundRecipient(self.address, self.notify, self.orcpt)


@dataclass(frozen=True)
class QueuedMessage:
    """One message of the queue with all its recipients."""

    queue_id: str
    sender: str
    envid: str | None
    ret: str | None
    smtputf8: bool
    body_8bit: bool
    size: int
    queued_at: float
    recipients: tuple[QueuedRecipient, ...]

    @property
    def pending(self) -> tuple[QueuedRecipient, ...]:
        return tuple(r for r in self.recipients if r.state is RecipientState.QUEUED)


class Settled(enum.Enum):
    """What `Queue.settle` did."""

    GONE = "gone"          # the message was deleted meanwhile: nothing recorded
    KEPT = "kept"          # recorded; some recipient is still QUEUED
    REMOVED = "removed"    # recorded, and the message left the queue


@dataclass(frozen=True)
class RecipientUpdate:
    """What one attempt (or an admin) changes for one recipient."""

    address: str
    state: RecipientState
    next_try: float
    last_reply: str
    remote_host: str | None = None
    delay_warned: bool = False
    attempted: bool = True          # count this as an attempt


class Queue(Protocol):
    """The durable outbound queue: message bytes plus per-recipient delivery state.

    Messages are written once and never changed; recipient rows change as attempts are made.
    Every method may block on the disk: async callers run them in a thread.
    """

    def enqueue(self, message: NewMessage, content: bytes) -> None:
        """Store `content` and its envelope durably (group commit), or raise DeliveryError."""
        ...

    def get(self, queue_id: str) -> QueuedMessage | None:
        """One message, or None if it is not (or no longer) queued."""
        ...

    def messages(self) -> list[QueuedMessage]:
        """Every queued message, oldest first."""
        ...

    def due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
            busy_domains: frozenset[str] = frozenset()) -> list[QueuedMessage]:
        """Up to `limit` messages, soonest first, that have a QUEUED recipient due at `now`
        outside `busy_domains`; messages in `exclude` (being delivered) are left out."""
        ...

    def next_due(self) -> float | None:
        """The earliest next try of any QUEUED recipient, or None if there is none."""
        ...

    def read(self, queue_id: str) -> bytes:
        """The message bytes (CRLF line ends, no dot-stuffing); raises FileNotFoundError."""
        ...

    def update(self, queue_id: str, updates: Sequence[RecipientUpdate]) -> bool:
        """Record attempt results durably; False if the message is gone (deleted meanwhile)."""
        ...

    def remove(self, queue_id: str) -> bool:
        """Delete a message and its rows; False if there was none."""
        ...

    def settle(self, queue_id: str, updates: Sequence[RecipientUpdate]) -> Settled:
        """`update`, and when no recipient is left QUEUED, `remove` in the same durable
        commit (the file goes only after it): one commit per finished message."""
        ...

    def retry(self, queue_id: str | None, now: float) -> int:
        """Make one message (None: every message) due now; return how many recipients."""
        ...
