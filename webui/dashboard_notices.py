"""What the dashboard warns the admin about: things that hold mail back or lose it
silently on a freshly installed appliance, each with the setting or page that fixes it.

- The virus scanner has no signatures until freshclam's first download (which needs internet
  access); while clamd does not answer, the engine defers every incoming message with `451`
  (unless `antivirus.fail_open`).
- Greylisting defers the first message from every new sender for `greylist.delay`.
- `postmaster@` of each domain must reach someone (RFC 5321 4.5.1), and the appliance's
  own alert mail (`monitor.admin_address`, else postmaster@ of the primary domain) must have
  a mailbox to go to; neither is created by itself, so the dashboard says when one is missing.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from appliance.checks.clamav import parse_address
from appliance.core.addresses import AddressError
from appliance.core.addresses import parse_address as parse_mail_address
from appliance.hardware.notify import admin_address, recipient
from appliance.settings import Settings
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import RecipientStatus

PING = b"zPING\x00"           # clamd(8): answered with "PONG\0"
PING_TIMEOUT = 1.0            # seconds: the dashboard must stay fast when clamd is down


@dataclass(frozen=True)
class Notice:
    """One line for the dashboard: `level` is "warning" or "info"."""

    level: str
    title: str
    text: str


def clamd_answers(address_text: str, timeout: float = PING_TIMEOUT) -> bool:
    """True when clamd at `address_text` (socket path or HOST:PORT) answers PING."""
    try:
        address = parse_address(address_text)
    except ValueError:
        return False
    family = socket.AF_UNIX if address.path else socket.AF_INET6 \
        if ":" in address.host else socket.AF_INET
    target: str | tuple[str, int] = address.path or (address.host, address.port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(target)
            sock.sendall(PING)
            return sock.recv(16).startswith(b"PONG")
    except OSError:
        return False


def dashboard_notices(settings: Settings, directory: SqliteDirectory) -> list[Notice]:
    """Every notice that applies now (an empty list when nothing needs the admin)."""
    return filter_notices(settings) + postmaster_notices(settings, directory)


def postmaster_notices(settings: Settings, directory: SqliteDirectory) -> list[Notice]:
    """Domains whose postmaster@ reaches nobody, and alert mail with no mailbox to go to."""
    notices = []
    silent = [domain for domain in directory.list_domains()
              if not _reaches_someone(f"postmaster@{domain}", directory)]
    if silent:
        notices.append(Notice(
            "warning", "postmaster@ reaches nobody",
            "Mail to " + ", ".join(f"postmaster@{d}" for d in silent) + " is refused, "
            "but every mail domain must accept it (RFC 5321 4.5.1). Add an alias to a "
            "mailbox on the Aliases page."))
    configured = settings.get_str("monitor.admin_address")
    address = admin_address(configured, settings.get_str("server.hostname"), directory)
    if address is not None and recipient(address, directory) is None:
        notices.append(Notice(
            "warning", "Alert mail has no mailbox",
            f"Disk, RAID and DNS alerts are mailed to {address}, which is not an account "
            "or alias here. Create it, or set monitor.admin_address in Settings."))
    return notices


def _reaches_someone(address: str, directory: SqliteDirectory) -> bool:
    try:
        parsed = parse_mail_address(address)
    except AddressError:
        return False
    return directory.resolve(parsed).status is RecipientStatus.DELIVER


def filter_notices(settings: Settings) -> list[Notice]:
    """The inbound filters that defer mail now."""
    notices = []
    if settings.get_bool("antivirus.enabled") and \
            not clamd_answers(settings.get_str("antivirus.clamd_socket")):
        if settings.get_bool("antivirus.fail_open"):
            text = ("Incoming mail is accepted unscanned, with an X-Virus-Scan: unavailable "
                    "header (antivirus.fail_open is on).")
        else:
            text = ("Incoming mail is deferred with 451 until it answers; senders retry. "
                    "On a new appliance clamd starts after freshclam's first signature "
                    "download, which needs internet access. To accept mail unscanned "
                    "meanwhile, turn on antivirus.fail_open in Settings.")
        notices.append(Notice("warning", "The virus scanner (ClamAV) is not answering",
                                    text))
    if settings.get_bool("greylist.enabled"):
        minutes = max(1, round(settings.get_int("greylist.delay") / 60))
        notices.append(Notice(
            "info", "Greylisting is on",
            f"The first message from a new sender is deferred for about {minutes} "
            f"minute{'s' if minutes != 1 else ''} and arrives when the sending server "
            "retries. Turn greylist.enabled off in Settings if first-contact mail must "
            "arrive at once."))
    return notices
