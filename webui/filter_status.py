"""What the dashboard says about the inbound filters that hold mail back on a new box.

Two things surprise the admin of a freshly installed appliance: the virus scanner has no
signatures until freshclam's first download (which needs internet access), and while clamd
is not answering the engine defers every incoming message with `451` (unless
`antivirus.fail_open`); and greylisting defers the first message from every new sender for
`greylist.delay`. The dashboard says so, with the setting that changes it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from appliance.checks.clamav import parse_address
from appliance.settings import Settings

PING = b"zPING\x00"           # clamd(8): answered with "PONG\0"
PING_TIMEOUT = 1.0            # seconds: the dashboard must stay fast when clamd is down


@dataclass(frozen=True)
class FilterNotice:
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


def filter_notices(settings: Settings) -> list[FilterNotice]:
    """The notices that apply now (an empty list when mail flows without delay)."""
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
        notices.append(FilterNotice("warning", "The virus scanner (ClamAV) is not answering",
                                    text))
    if settings.get_bool("greylist.enabled"):
        minutes = max(1, round(settings.get_int("greylist.delay") / 60))
        notices.append(FilterNotice(
            "info", "Greylisting is on",
            f"The first message from a new sender is deferred for about {minutes} "
            f"minute{'s' if minutes != 1 else ''} and arrives when the sending server "
            "retries. Turn greylist.enabled off in Settings if first-contact mail must "
            "arrive at once."))
    return notices
