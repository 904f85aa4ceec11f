"""Alert mail: what the admin receives when an alert is raised, changes, is still there a
day later, or clears. Delivered by Mailstead's own Deliverer (a local Maildir, or the
outbound queue for an outside address), the route the DMARC aggregate reports take
(reports/sender.py), so no outside service is involved.

The mail has a null envelope sender and `Auto-Submitted: auto-generated` (RFC 3834 5):
no bounce and no vacation reply loops back to the monitor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from appliance.core.addresses import AddressError, parse_address, primary_domain
from appliance.hardware.alerts import Notice
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.settings import Settings
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import RecipientStatus, Resolution

EVENT_WORDS = {"raised": "NEW", "changed": "CHANGED", "reminder": "STILL", "cleared": "CLEARED"}


def admin_address(configured: str, hostname: str, directory: SqliteDirectory) -> str | None:
    """`monitor.admin_address`, else postmaster@<primary domain>; None without domains."""
    if configured:
        return configured
    domain = primary_domain(hostname, directory.list_domains())
    return f"postmaster@{domain}" if domain else None


@dataclass(frozen=True)
class AdminMailbox:
    """Where the appliance's own mail to its admin goes, and the From it is sent with."""

    address: str
    to: Accepted
    sender: str


def admin_mailbox(settings: Settings, directory: SqliteDirectory) -> AdminMailbox | None:
    """`monitor.admin_address` (else postmaster@ the primary domain) resolved for the
    Deliverer; None when there is none or it is not a known mailbox."""
    hostname = settings.get_str("server.hostname")
    address = admin_address(settings.get_str("monitor.admin_address"), hostname, directory)
    to = recipient(address, directory) if address else None
    if address is None or to is None:
        return None
    return AdminMailbox(address, to, sender_address(hostname, directory, address))


def sender_address(hostname: str, directory: SqliteDirectory, admin: str) -> str:
    """From: postmaster@<primary domain>, a mailbox of ours that the outbound runner signs
    for (an outside admin address in From would fail DMARC at the admin's provider)."""
    domain = primary_domain(hostname, directory.list_domains())
    return f"postmaster@{domain}" if domain else admin


def subject(notices: Sequence[Notice]) -> str:
    first = sorted(notices, key=_rank)[0]
    word = "OK" if first.event == "cleared" else first.level.upper()
    more = f" (+{len(notices) - 1} more)" if len(notices) > 1 else ""
    return f"[Mailstead {word}] {EVENT_WORDS[first.event].capitalize()}: {first.title}{more}"


def _rank(notice: Notice) -> tuple[int, str]:
    order = {"critical": 0, "warning": 1, "ok": 2}
    return order.get(notice.level, 3), notice.key


def body(notices: Sequence[Notice], hostname: str) -> str:
    parts = [f"The hardware monitor of {hostname} reports:\n"]
    for notice in sorted(notices, key=_rank):
        since = datetime.fromtimestamp(notice.first_seen, UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts.append(f"{EVENT_WORDS[notice.event]} {notice.level.upper()}: {notice.title}\n"
                     f"{notice.text}\n(first seen {since}; alert key {notice.key})\n")
    parts.append("`mailstead health` shows the current state. A problem that stays is "
                 "mailed again once a day; every change is mailed at once.\n")
    return "\n".join(parts)


def compose(notices: Sequence[Notice], sender: str, to: str, hostname: str,
            now: datetime | None = None) -> bytes:
    """One mail for all of one poll's notices; CRLF line ends."""
    return system_mail(f"Mailstead monitor <{sender}>", to, subject(notices),
                       body(notices, hostname), hostname, now)


def system_mail(from_field: str, to: str, subject_text: str, text: str, hostname: str,
                now: datetime | None = None) -> bytes:
    """A plain-text mail of the appliance to its admin (alerts, DNS changes), marked
    `Auto-Submitted: auto-generated` (RFC 3834 5) so no responder answers it; CRLF."""
    message = EmailMessage()
    message["From"] = from_field
    message["To"] = to
    message["Subject"] = subject_text
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=hostname)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    return message.as_bytes(policy=SMTP)


def recipient(address: str, directory: SqliteDirectory) -> Accepted | None:
    """The admin address as the Deliverer wants it; None for an unknown local user."""
    try:
        parsed = parse_address(address)
    except AddressError:
        return None
    resolution = directory.resolve(parsed)
    if resolution.status in (RecipientStatus.UNKNOWN, RecipientStatus.DISABLED):
        return None
    if resolution.status is RecipientStatus.NOT_LOCAL:
        resolution = Resolution(RecipientStatus.NOT_LOCAL)
    return Accepted(str(parsed), resolution)


async def send(deliverer: Deliverer, to: Accepted, message: bytes) -> str:
    """Store the alert durably (Maildir or queue); the free-space floor is not applied:
    an alert about a full disk must still get through. Returns the queue id."""
    return await deliverer.accept(message, "", [to], enforce_floor=False)
