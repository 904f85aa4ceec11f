"""DNSBL/DNSWL zone lists and query names (pure): parsing `dnsbl.*_zones` settings, the
reversed-address and domain query names of RFC 5782, and which answers count as a listing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MAX_ZONES = 16           # per list: each zone is one more query per message
MAX_POINTS = 100.0       # |points| of one zone


@dataclass(frozen=True)
class Zone:
    """One list: its DNS zone, the spam points a listing adds (negative: an allow list),
    and whether a listing alone rejects the message."""

    name: str
    points: float
    reject: bool = False

    @property
    def allows(self) -> bool:
        return self.points < 0


def parse_zones(text: str, reject: frozenset[str] = frozenset()) -> tuple[Zone, ...]:
    """Parse `"zen.spamhaus.org:6, list.dnswl.org:-5"` (points default to 1).

    Args:
        text: comma-separated `zone[:points]` items; "" means no zones.
        reject: zone names whose listing rejects the message (allow lists never do).

    Raises:
        ValueError: a malformed zone name or points, a zone listed twice, too many zones.
    """
    zones: list[Zone] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, points_text = item.partition(":")
        name = _zone_name(name)
        points = _points(points_text.strip() or "1", item)
        if any(z.name == name for z in zones):
            raise ValueError(f"zone {name} is listed twice")
        zones.append(Zone(name, points, name in reject and points > 0))
    if len(zones) > MAX_ZONES:
        raise ValueError(f"at most {MAX_ZONES} zones")
    return tuple(zones)


def parse_zone_names(text: str) -> frozenset[str]:
    """Parse a comma-separated list of zone names (`dnsbl.reject_zones`)."""
    return frozenset(_zone_name(p) for p in (x.strip() for x in text.split(",")) if p)


def _zone_name(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 200 or not all(_is_label(x) for x in labels):
        raise ValueError(f"not a DNS zone name: {text!r}")
    return name


def _is_label(label: str) -> bool:
    return 0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in label)


def _points(text: str, item: str) -> float:
    try:
        points = float(text)
    except ValueError:
        raise ValueError(f"points of {item!r} are not a number") from None
    if not -MAX_POINTS <= points <= MAX_POINTS or points == 0:
        raise ValueError(f"points of {item!r} must be non-zero, from -100 to 100")
    return points


def reversed_address(ip: str) -> str | None:
    """The RFC 5782 2.1 / 2.4 label sequence for `ip`: IPv4 octets reversed, IPv6 nibbles
    reversed (an IPv4-mapped IPv6 address is its IPv4); None if `ip` is not an address."""
    try:
        address = ipaddress.ip_address(ip.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    pointer = address.reverse_pointer
    return pointer.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")


def is_listing(answer: str) -> bool:
    """Whether an A answer from a list means "listed" (RFC 5782 2.3: 127.0.0.0/8).

    Not listings: 127.0.0.1 (RFC 5782 5: never a listing; SURBL's "access blocked"),
    127.255.255.0/24 (Spamhaus: query refused, public resolver, over the free limit),
    x.x.x.255 (DNSWL's and DBL's error answers), and anything outside 127/8 (a wildcard
    or a hijacked, expired zone answering for everything).
    """
    try:
        address = ipaddress.IPv4Address(answer)
    except ValueError:
        return False
    octets = answer.split(".")
    if not address.is_loopback or answer == "127.0.0.1":
        return False
    return not (octets[1:3] == ["255", "255"] or octets[3] == "255")
