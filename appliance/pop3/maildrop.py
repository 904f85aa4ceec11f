"""The maildrop as a POP3 session sees it: messages numbered at login, deletion marks.

RFC 1939 5: messages are numbered 1..n when the session enters TRANSACTION and keep their
numbers; a message marked deleted may not be referred to again until RSET; sizes are
octets with CRLF line ends (what `MessageMeta.size` holds). Pure data, no store access.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.storage.mailbox_api import FolderSnapshot


@dataclass
class Maildrop:
    """The numbered messages of one session and which of them are marked deleted."""

    uidvalidity: int
    uids: tuple[int, ...]
    sizes: tuple[int, ...]
    deleted: set[int] = field(default_factory=set)     # message numbers

    @classmethod
    def from_snapshot(cls, snapshot: FolderSnapshot) -> Maildrop:
        return cls(snapshot.uidvalidity, tuple(m.uid for m in snapshot.messages),
                   tuple(m.size for m in snapshot.messages))

    def live(self) -> list[int]:
        """The numbers of messages not marked deleted, ascending."""
        return [n for n in range(1, len(self.uids) + 1) if n not in self.deleted]

    def count(self) -> int:
        return len(self.uids) - len(self.deleted)

    def size(self) -> int:
        return sum(self.sizes[n - 1] for n in self.live())

    def exists(self, number: int) -> bool:
        """Whether `number` names a message (deleted or not)."""
        return 1 <= number <= len(self.uids)

    def uid(self, number: int) -> int:
        return self.uids[number - 1]

    def octets(self, number: int) -> int:
        return self.sizes[number - 1]

    def unique_id(self, number: int) -> str:
        """Dovecot's default `pop3_uidl_format` %08Xu%08Xv: UID then UIDVALIDITY in hex.

        Stable across sessions and IMAP use for as long as the folder keeps its
        UIDVALIDITY, and the same string Dovecot gives: migrated clients do not fetch
        everything again. RFC 1939 7: 1 to 70 characters in 0x21..0x7E.
        """
        return f"{self.uid(number):08X}{self.uidvalidity:08X}"

    def deleted_uids(self) -> tuple[int, ...]:
        return tuple(self.uid(n) for n in sorted(self.deleted))
