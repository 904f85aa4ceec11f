"""`mailstead reports list|show|failures|import`: the DMARC and TLS-RPT reports received;
`mailstead reports send-aggregate`: send our own DMARC aggregate reports now.

Reports arrive by mail (reports/intake.py); `import` takes a saved message (.eml) or a raw
report file (.xml, .xml.gz, .zip, .json, .json.gz) for reports that came another way.
`send-aggregate` queues the reports the engine would send after midnight (reports/sender.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from appliance.cli import context
from appliance.cli.context import CliError
from appliance.core.addresses import normalise_domain
from appliance.outbound.service import build_deliverer
from appliance.reports.extract import Found, is_raw_report, parse_report, reports_in_message
from appliance.reports.intake import DAY, limits_from
from appliance.reports.model import Limits, ReportError
from appliance.reports.sender import AggregateSender, Outcome, day_start
from appliance.reports.store import ReportStore
from appliance.settings import Settings

KINDS = ("dmarc", "tlsrpt")


def register(commands: Any) -> None:
    reports = commands.add_parser("reports", help="DMARC aggregate and TLS-RPT reports "
                                  "received for local domains")
    sub = reports.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="stored reports, newest first")
    listing.add_argument("--domain", help="only reports about this domain")
    listing.add_argument("--kind", choices=KINDS, help="only this kind of report")
    listing.add_argument("--days", type=int, help="only reports covering the last N days")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="one report with its rows")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="print JSON")
    failures = sub.add_parser("failures", help="sources failing DMARC, TLS failures")
    failures.add_argument("--domain", help="only this domain")
    failures.add_argument("--days", type=int, default=30, help="period (default: 30 days)")
    failures.add_argument("--json", action="store_true", help="print JSON")
    importing = sub.add_parser("import", help="store the reports in a saved message or a "
                               "report file (.eml, .xml, .gz, .zip, .json)")
    importing.add_argument("file", type=Path)
    sending = sub.add_parser("send-aggregate", help="send our DMARC aggregate reports "
                             "(RFC 7489 7.2) not sent yet")
    sending.add_argument("--day", help="only the evaluations of this UTC day (YYYY-MM-DD); "
                         "default: every day before today")
    sending.add_argument("--dry-run", action="store_true",
                         help="show what would be sent; queue nothing, mark nothing")
    reports.set_defaults(handler=reports_command)


def reports_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    _, conn = context.open_directory(current)
    store = ReportStore(conn)
    if args.action == "list":
        return _list(store, args)
    if args.action == "show":
        return _show(store, args.id, args.json)
    if args.action == "failures":
        return _failures(store, args)
    if args.action == "send-aggregate":
        return _send_aggregate(current, conn, args.day, args.dry_run)
    return _import(current, conn, store, args.file)


def _since(days: int | None) -> int | None:
    return None if days is None else int(time.time()) - days * DAY


def _domain(name: str | None) -> str | None:
    """--domain as stored: a lower-case A-label (raises AddressError: exit status 2)."""
    return None if name is None else normalise_domain(name)


def _day(seconds: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def _list(store: ReportStore, args: argparse.Namespace) -> int:
    found = store.list_reports(domain=_domain(args.domain), kind=args.kind,
                               since=_since(args.days))
    if args.json:
        print(json.dumps([asdict(r) for r in found], indent=2))
        return 0
    for r in found:
        print(f"{r.id:>6} {r.kind:<6} {r.domain:<24} {_day(r.date_begin)}..{_day(r.date_end)}"
              f" {r.messages:>8} {r.failed:>7} failed  {r.org_name} ({r.report_id})")
    if not found:
        print("no reports stored")
    return 0


def _show(store: ReportStore, row_id: int, as_json: bool) -> int:
    report = store.get(row_id)
    if report is None:
        raise CliError(f"no report with id {row_id}: see `mailstead reports list`")
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['kind']} report {report['report_id']} from {report['org_name']} "
          f"<{report['contact']}> about {report['domain']}")
    print(f"period {_day(report['date_begin'])}..{_day(report['date_end'])}, received "
          f"{_day(report['received_at'])} ({report['source']}); {report['messages']} "
          f"{'messages' if report['kind'] == 'dmarc' else 'sessions'}, {report['failed']} "
          "failed")
    for record in report.get("records", []):
        print(f"  {record['source_ip']:<40} {record['count']:>7} {record['disposition']:<10}"
              f" dkim={record['dkim']} spf={record['spf']} from={record['header_from']}")
    for policy in report.get("policies", []):
        print(f"  {policy['policy_type']} {policy['policy_domain']}: {policy['successful']} "
              f"ok, {policy['failed']} failed")
        for failure in policy["failures"]:
            print(f"    {failure['result_type']} x{failure['failed_sessions']} "
                  f"{failure['receiving_mx_hostname']} {failure['sending_mta_ip']}")
    return 0


def _failures(store: ReportStore, args: argparse.Namespace) -> int:
    since = _since(args.days)
    dmarc = store.failing_sources(_domain(args.domain), since)
    tls = store.tls_failures(_domain(args.domain), since)
    if args.json:
        print(json.dumps({"dmarc": [asdict(f) for f in dmarc], "tls": tls}, indent=2))
        return 0
    for f in dmarc:
        print(f"dmarc {f.source_ip:<40} {f.messages:>8} messages from {f.header_from} "
              f"({f.reports} reports, {f.dispositions})")
    for t in tls:
        print(f"tls   {t['policy_domain']} {t['result_type']} {t['receiving_mx_hostname']} "
              f"x{t['sessions']}")
    if not dmarc and not tls:
        print("no failures reported")
    return 0


def _import(current: Settings, conn: sqlite3.Connection, store: ReportStore,
            path: Path) -> int:
    limits = limits_from(current)
    found = _read(path, limits)
    for error in found.errors:
        print(f"skipped: {error}")
    now = int(time.time())
    for report in found.reports:
        row, new = store.save(report, f"import {path.name}", now)
        state = "stored" if new else "already stored"
        print(f"{state}: {report.kind} report {report.report_id} from {report.org_name} "
              f"about {report.domain} as id {row}")
    store.prune(now - current.get_int("reports.retention_days") * DAY)
    conn.close()
    return 0 if found.reports else 1


def _read(path: Path, limits: Limits) -> Found:
    """The reports in a raw report file or a saved message."""
    try:
        with path.open("rb") as file:
            data = file.read(2 * limits.max_uncompressed + 1)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > 2 * limits.max_uncompressed:
        raise CliError(f"{path} is larger than {2 * limits.max_uncompressed} bytes")
    if is_raw_report(data):
        try:
            return Found((parse_report(data, limits),), ())
        except ReportError as exc:
            return Found((), (str(exc),))
    return reports_in_message(data, limits)


def _send_aggregate(current: Settings, conn: sqlite3.Connection, day: str | None,
                    dry_run: bool) -> int:
    if day is not None:
        try:
            day_start(day)
        except ValueError:
            raise CliError(f"--day {day!r} is not a date like 2026-01-31") from None
    outcomes = asyncio.run(_send(current, conn, day, dry_run))
    for outcome in outcomes:
        _print_outcome(outcome, dry_run)
    if not outcomes:
        print("no DMARC evaluations waiting to be reported")
    conn.close()
    return 0


async def _send(current: Settings, conn: sqlite3.Connection, day: str | None,
                dry_run: bool) -> list[Outcome]:
    with ThreadPoolExecutor(4, thread_name_prefix="deliver") as executor:
        deliverer = None if dry_run else build_deliverer(current, executor)
        sender = AggregateSender.from_settings(current, conn, deliverer)
        return await sender.run(day, dry_run)


def _print_outcome(outcome: Outcome, dry_run: bool) -> None:
    verb = "would queue" if dry_run else "queued"
    print(f"{outcome.domain} {outcome.day}: messages={outcome.messages}")
    for address, queue_id in outcome.queued:
        print(f"  {verb} to {address}" + ("" if dry_run else f" as {queue_id}"))
    for address, why in outcome.skipped:
        print(f"  not sent to {address}: {why}")
