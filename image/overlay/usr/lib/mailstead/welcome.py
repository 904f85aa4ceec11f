"""mailstead-welcome.service: the unprivileged part of every boot of the appliance image.

Prepares the data directory (layout, self-signed TLS certificate, mailstead.db), makes the
one-time setup code while no admin exists, and shows it with the console's URL (text and a
QR code) on the console and in the login prompts' issue file. Runs with the image's venv
Python: /opt/mailstead/venv/bin/python /usr/lib/mailstead/welcome.py.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

# Printed alone on a line; `./build.sh image-test` reads the code from the serial console
# by this prefix.
CODE_PREFIX = "Mailstead setup code: "
NO_ADDRESS = "Web console: no network address yet (is a cable plugged in?)"


def global_addresses(candidates: Iterable[str]) -> list[str]:
    """The addresses a browser on the LAN can use, IPv4 first: not loopback, not
    link-local, not unspecified (an IPv6 zone suffix such as `%eth0` is dropped)."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in candidates:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if not (address.is_loopback or address.is_link_local or address.is_unspecified
                or address.is_multicast):
            found.append(address)
    found.sort(key=lambda a: (a.version, int(a)))
    return [str(a) for a in dict.fromkeys(found)]


def interface_addresses() -> list[str]:
    """Every address of every interface, from getifaddrs(3) through psutil: netlink only,
    which the unit's sandbox allows (it has no AF_INET socket and runs no `ip`)."""
    import socket

    import psutil

    return [entry.address for entries in psutil.net_if_addrs().values() for entry in entries
            if entry.family in (socket.AF_INET, socket.AF_INET6)]


def console_urls(addresses: Sequence[str], port: int) -> list[str]:
    """https:// URLs of the console for each address (IPv6 in brackets, the port if not 443)."""
    urls = []
    for address in addresses:
        host = f"[{address}]" if ":" in address else address
        urls.append(f"https://{host}/" if port == 443 else f"https://{host}:{port}/")
    return urls


def qr_lines(text: str) -> list[str]:
    """`text` as a QR code drawn with block characters (dark on a light terminal border)."""
    import qrcode

    code = qrcode.QRCode(border=2)
    code.add_data(text)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue().rstrip("\n").splitlines()


def welcome_text(code: str | None, urls: Sequence[str], hostname: str) -> str:
    """What the screen and the serial console show."""
    lines = ["", "Mailstead mail appliance", "=" * 24]
    if urls:
        lines.append("Web console: " + "  ".join(urls))
    else:
        lines.append(NO_ADDRESS)
    if code is None:
        lines.append(f"An admin account exists: log in to the console ({hostname}).")
    else:
        lines += [
            "Open the console in a browser on this network and enter this one-time code",
            "to create the admin account:",
            "",
            CODE_PREFIX + code,
        ]
        if urls:
            lines += ["", *qr_lines(urls[0])]
    lines.append("")
    return "\n".join(lines) + "\n"


def issue_text(welcome: str, port: int) -> str:
    """The welcome for agetty's issue files, where backslashes are agetty escapes.

    Without an address at boot, the console line becomes agetty's live `\\4` (the IPv4
    address of the first interface that has one): agetty redraws the prompt when the
    network changes, so a lease that arrives after this service ran still shows."""
    escaped = welcome.replace("\\", "\\\\")
    live = "Web console: https://\\4/" if port == 443 else f"Web console: https://\\4:{port}/"
    return escaped.replace(NO_ADDRESS, live)


def prepare(config: Path) -> tuple[str | None, int, str]:
    """Prepare the data directory; (setup code or None, console port, hostname)."""
    from appliance import datadir
    from appliance.settings import load_settings
    from appliance.storage.db import open_database
    from webui import admins, setup_code

    settings = load_settings(config)
    data_dir = datadir.prepare(settings)
    conn = open_database(data_dir)
    try:
        has_admin = admins.any_admin(conn)
    finally:
        conn.close()
    code = None if has_admin else setup_code.ensure(data_dir)
    return code, settings.get_int("listen.console_port"), settings.get_str("server.hostname")


ADDRESS_WAIT = 20.0      # seconds to wait for a DHCP lease after network-online.target


def wait_for_addresses(budget: float) -> list[str]:
    """The global addresses, polled for up to `budget` seconds until there is one
    (network-online.target may be reached by a link that has no lease yet)."""
    deadline = time.monotonic() + budget
    while True:
        addresses = global_addresses(interface_addresses())
        if addresses or time.monotonic() >= deadline:
            return addresses
        time.sleep(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--issue", type=Path, help="write the welcome here for agetty too")
    args = parser.parse_args(argv)
    code, port, hostname = prepare(args.config)
    urls = console_urls(wait_for_addresses(ADDRESS_WAIT), port)
    text = welcome_text(code, urls, hostname)
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.issue is not None:
        temporary = args.issue.with_name(args.issue.name + ".tmp")
        temporary.write_text(issue_text(text, port), encoding="utf-8")
        os.chmod(temporary, 0o644)      # agetty (root) reads it; no secret once shown
        os.replace(temporary, args.issue)
    return 0


if __name__ == "__main__":
    sys.exit(main())
