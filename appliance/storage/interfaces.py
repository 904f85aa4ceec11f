"""The storage contracts: `Directory` (who receives mail) and `MailStore` (where it lands).

Implementations: `directory.SqliteDirectory` and `maildir.store.MaildirStore`; a scale-out
implementation plugs in behind the same Protocols (DESIGN.md, "Boundaries").
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.core.addresses import Address


@dataclass(frozen=True)
class Mailbox:
    """A local account that can receive mail."""

    account_id: int
    address: str
    maildir: Path          # relative to the data directory


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

    def deliver(self, message: bytes, mailboxes: Sequence[Mailbox]) -> None:
        """Store `message` in every mailbox durably, or raise DeliveryError leaving nothing."""
        ...
