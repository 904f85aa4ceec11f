"""Routing (pure): accepted recipients -> the local mailboxes to store in and remote recipients.

The directory has already expanded aliases (`Resolution`); this module only merges them:
each mailbox once, each remote address once, DSN parameters carried along (RFC 3461 4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.core.addresses import AddressError, parse_address
from appliance.outbound.types import OutboundRecipient
from appliance.storage.interfaces import Mailbox, RecipientStatus, Resolution


@dataclass(frozen=True)
class Accepted:
    """One accepted envelope recipient: as given, what the directory said, its DSN params.

    A recipient outside our domains (submission, bounces) has status NOT_LOCAL and is
    routed to itself as a remote recipient.
    """

    address: str
    resolution: Resolution
    notify: tuple[str, ...] = ()      # RFC 3461 NOTIFY values, upper case
    orcpt: str | None = None          # RFC 3461 ORCPT, decoded: "rfc822;user@example.org"


@dataclass(frozen=True)
class Route:
    """Where one message goes."""

    mailboxes: tuple[Mailbox, ...]
    remote: tuple[OutboundRecipient, ...]
    delivered_locally: tuple[Accepted, ...]   # stored in a mailbox and NOTIFY has SUCCESS


def route(recipients: Sequence[Accepted]) -> Route:
    """Merge the recipients' resolutions; each mailbox and remote address appears once."""
    mailboxes: dict[int, Mailbox] = {}
    remote: dict[str, OutboundRecipient] = {}
    notify_success: list[Accepted] = []
    for accepted in recipients:
        for mailbox in accepted.resolution.mailboxes:
            mailboxes.setdefault(mailbox.account_id, mailbox)
        for target in remote_targets(accepted):
            remote.setdefault(_key(target.address), target)
        if accepted.resolution.mailboxes and "SUCCESS" in accepted.notify:
            notify_success.append(accepted)
    return Route(tuple(mailboxes.values()), tuple(remote.values()), tuple(notify_success))


def remote_targets(accepted: Accepted) -> list[OutboundRecipient]:
    """The remote recipients one accepted recipient turns into.

    An alias expanded to an outside address keeps the NOTIFY of the original recipient and
    names it in ORCPT, so a later DSN says which address the sender used (RFC 3461 4.2).
    """
    resolution = accepted.resolution
    if resolution.status is RecipientStatus.NOT_LOCAL:
        return [OutboundRecipient(accepted.address, accepted.notify, accepted.orcpt)]
    if resolution.status is not RecipientStatus.DELIVER:
        return []
    orcpt = accepted.orcpt or original_recipient(accepted.address)
    return [OutboundRecipient(target, accepted.notify, orcpt) for target in resolution.remote]


def refused_destination(domain: str, hostname: str) -> bool:
    """True for a recipient domain that mail must never be relayed to, even when the
    sender is authenticated: it names this host or a bare IP address, not a mail domain.

    - an address literal (`[127.0.0.1]`, `[IPv6:::1]`, RFC 5321 4.1.3): it bypasses the MX
      records, so a user could aim our queue at any host, loopback and LAN included;
    - `localhost` and every name below it (RFC 6761 6.3: always the local host);
    - a name whose last label is all digits (`127.0.0.1`): an IPv4 address in disguise,
      as no top-level domain is numeric (RFC 3696 2, RFC 1123 2.1);
    - our own host name (when it is not one of our mail domains): mail would loop.

    Args:
        domain: the domain part as the client sent it, or normalised (A-label, lower case).
        hostname: `server.hostname`.
    """
    name = domain.lower().rstrip(".")
    if name.startswith("[") or name == hostname.lower().rstrip("."):
        return True
    return (name == "localhost" or name.endswith(".localhost")
            or name.rpartition(".")[2].isdigit())


def original_recipient(address: str) -> str:
    """An ORCPT value for `address`: `rfc822` type, or `utf-8` (RFC 6533) if it needs it."""
    return f"{'rfc822' if address.isascii() else 'utf-8'};{address}"


def _key(address: str) -> str:
    try:
        return parse_address(address).key
    except AddressError:
        return address
