"""`mailstead dns records DOMAIN` and `mailstead dns check [DOMAIN] [--daily]`.

Both read the console's record list (`webui/dns_records.py`), so the command line, the DNS
page and its zone file download publish the same records. `check` runs the DNS page's live
checks and stores them (changes become alerts on the page); `--daily` checks only when the
last check is a day old, and mails the changes to the admin (`webui/dns_notify.py`), for a
timer.
"""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli import context
from appliance.cli.context import CliError
from appliance.core.addresses import normalise_domain

STATE_MARK = {"ok": "ok     ", "missing": "MISSING", "wrong": "WRONG  ", "error": "ERROR  "}


def register(commands: Any) -> None:
    zone = commands.add_parser("dns", help="DNS records to publish, and their live check")
    sub = zone.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("records", help="zone-file lines for a domain").add_argument("domain")
    check = sub.add_parser("check", help="look the records up and store the results "
                           "(changes appear as alerts on the console's DNS page)")
    check.add_argument("domain", nargs="?", help="one local domain (default: all)")
    check.add_argument("--daily", action="store_true",
                       help="only if the last check is at least a day old, then mail "
                       "the changes to the admin (for a timer)")
    zone.set_defaults(handler=dns_command)


def dns_command(args: argparse.Namespace) -> int:
    # The console's modules (and Flask with them) load only for this command: the engine
    # runs through this command line too, and must not carry them.
    from webui import dns_notify, dns_store
    from webui.dns_check import domain_records, facts_from_settings
    from webui.dns_records import zone_file
    current = context.settings(args)
    directory, conn = context.open_directory(current)
    try:
        domains = directory.list_domains()
        domain = normalise_domain(args.domain) if args.domain else None
        if domain is not None and domain not in domains:
            raise CliError(f"{domain} is not a local domain: `mailstead domain add "
                           f"{domain}` first")
        if args.action == "records":
            assert domain is not None
            print(zone_file(domain, facts_from_settings(current),
                            domain_records(current, domain)), end="")
            return 0
        if args.daily and domain is None:
            alerts = dns_store.daily_recheck(current, conn)
            queue_id = dns_notify.mail_alerts(current, conn)    # also earlier unmailed ones
            if queue_id is not None:
                print(f"changes mailed to the admin (queue id {queue_id})")
            if alerts is None:
                print("checked less than a day ago: nothing to do")
                return 0
        else:
            alerts = dns_store.check_and_save(current, conn,
                                              [domain] if domain is not None else None)
        return _report(conn, [domain] if domain else domains, len(alerts))
    finally:
        conn.close()


def _report(conn: Any, domains: list[str], changes: int) -> int:
    """Print the stored results; exit status 1 when any check is not ok."""
    from webui import dns_store
    from webui.dns_check import SERVER
    bad = 0
    for scope in [SERVER, *domains]:
        print(f"== {scope or 'this server'}")
        for stored in dns_store.latest(conn, scope):
            result = stored.result
            bad += result.state != "ok"
            note = f"  ({result.note})" if result.note else ""
            print(f"{STATE_MARK[result.state]} {result.rtype:5} {result.name}{note}")
    print(f"{bad} checks not ok; {changes} changed since the last check")
    return 1 if bad else 0
