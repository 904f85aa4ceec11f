"""The report addresses (`reports.addresses`): which envelope recipients get reports.

Kept free of other appliance imports so that the settings schema can validate with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.pipeline.route import Accepted


def parse_addresses(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Comma-separated local parts (meaning: on every local domain) and full addresses;
    returns (local parts, addresses), case-folded. "" is none at all.

    Raises:
        ValueError: an empty item or one with white space.
    """
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    if any(not item or any(c.isspace() for c in item) for item in items):
        raise ValueError("expected local parts or addresses separated by commas")
    return (frozenset(i.casefold() for i in items if "@" not in i),
            frozenset(i.casefold() for i in items if "@" in i))


@dataclass(frozen=True)
class ReportAddresses:
    """Which envelope recipients are report addresses."""

    local_parts: frozenset[str]
    addresses: frozenset[str]

    @classmethod
    def from_setting(cls, text: str) -> ReportAddresses:
        return cls(*parse_addresses(text))

    def __bool__(self) -> bool:
        return bool(self.local_parts or self.addresses)

    def matches(self, recipient: Accepted) -> bool:
        """A recipient delivered to a local mailbox at one of the addresses. Local parts
        compare case-insensitively, as `postmaster` must (RFC 5321 4.5.1)."""
        if not recipient.resolution.mailboxes:
            return False
        address = recipient.address.casefold()
        return (address in self.addresses
                or address.rpartition("@")[0] in self.local_parts)
