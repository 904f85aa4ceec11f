"""Sending our DMARC aggregate reports (RFC 7489 7.2): one report per (policy domain, UTC
day) from the recorded evaluations (evaluations.py), queued to each `rua=mailto:` address.

- Destinations (6.2, 6.3): `mailto:` URIs only (other schemes are ignored, 6.2); a size
  limit `!10m` (k, m, g, t are powers of two, 6.3) is honoured: a report too large for it
  is replaced there by a short one carrying only an <error> that says so (7.2.1.1 lets a
  receiver tell the owner a report exists that the limit kept back).
- External destinations (7.1): when the address's domain has another Organizational
  Domain than the policy domain, `<policy-domain>._report._dmarc.<rua-domain>` must hold a
  TXT record starting `v=DMARC1`, else nothing is sent there; its own rua= replaces the
  address. A lookup that fails skips the address this time; the rows stay unreported
  unless another address got the report.
- The mail (7.2.2): from `postmaster@<our primary domain>`, a real address on our domain,
  so the outbound runner DKIM-signs it like any mail of ours; queued by the Deliverer.
- Rows of a sent report are marked reported; rows older than KEEP_DAYS are pruned.

`run_daily` is the engine's task (primary process only): shortly after each UTC midnight it
sends every day not yet reported. `mailstead reports send-aggregate` runs the same steps.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import sqlite3
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from appliance.checks import dmarc
from appliance.checks.auth_dns import DnsTempError, TxtLookup
from appliance.core import log
from appliance.core.addresses import AddressError, parse_address, primary_domain
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.reports import evaluations
from appliance.reports.aggregate import report_mail, summed
from appliance.reports.model import DmarcReport, PolicyPublished
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import RecipientStatus, Resolution

DAY = 86400
KEEP_DAYS = 7               # rows of older days are pruned: a report that late is no use
SEND_DELAY = 15 * 60        # seconds after UTC midnight: the day's last rows are written
MAX_DESTINATIONS = 4        # rua= addresses served per report (6.2: at least two)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

Txt = Callable[[str], Awaitable[tuple[bytes, ...]]]


@dataclass(frozen=True)
class Destination:
    """A `mailto:` report address and its size limit in bytes (0: none)."""

    address: str
    limit: int = 0


def parse_uri(uri: str) -> Destination | None:
    """A `rua=` URI as a Destination; None for another scheme or no usable address."""
    text, _, size = uri.strip().partition("!")
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() != "mailto":
        return None
    address = urllib.parse.unquote(rest.split("?", 1)[0]).strip()
    limit = _size(size.strip().lower())
    if "@" not in address or limit is None:
        return None
    return Destination(address, limit)


def _size(text: str) -> int | None:
    """6.3 size: digits with an optional unit; "" = no limit; None when malformed."""
    if not text:
        return 0
    digits, unit = (text[:-1], text[-1]) if text[-1] in "kmgt" else (text, "")
    return int(digits) * _UNITS[unit] if digits.isdigit() else None


def is_external(policy_domain: str, address: str) -> bool:
    """7.1: the address's domain is outside the policy domain's Organizational Domain."""
    target = dmarc.domain_of(address)
    return dmarc.organizational_domain(target) != dmarc.organizational_domain(policy_domain)


async def verify(policy_domain: str, dest: Destination,
                 txt: Txt) -> tuple[str, tuple[Destination, ...]]:
    """RFC 7489 7.1 for one destination: ("ok", destinations to use), ("refused", ()) or
    ("temperror", ())."""
    if not is_external(policy_domain, dest.address):
        return "ok", (dest,)
    name = f"{policy_domain}._report._dmarc.{dmarc.domain_of(dest.address)}"
    try:
        answers = await txt(name)
    except (DnsTempError, OSError) as exc:
        log.event("dmarc_report.verify_failed", domain=policy_domain, record=name,
                  reason=str(exc)[:200])
        return "temperror", ()
    records = [a.decode("utf-8", "replace") for a in answers]
    found = [r for r in records if r.replace(" ", "").startswith("v=DMARC1")]
    if not found:
        return "refused", ()
    rua = _tag(found[0], "rua")            # 7.1: the record may name other addresses
    redirected = destinations(rua) if rua else ()
    return "ok", redirected or (dest,)


def _tag(record: str, name: str) -> str:
    """The value of tag `name` in a `tag=value; ...` record ("" when absent)."""
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            return value.strip()
    return ""


def day_start(day: str) -> int:
    """POSIX seconds of 00:00:00 UTC of `day` (YYYY-MM-DD).

    Raises:
        ValueError: not a YYYY-MM-DD date.
    """
    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


def build_report(domain: str, day: str, rows: list[evaluations.Evaluation], org_name: str,
                 email: str, first_id: int) -> DmarcReport:
    """The report of one (policy domain, day) from its rows; the policy published is the
    newest row's (a record changed during the day is reported as it ended)."""
    begin = day_start(day)
    last = rows[-1]
    policy = PolicyPublished(domain=domain, p=last.p, sp=last.sp, adkim=last.adkim,
                             aspf=last.aspf, pct=last.pct, fo=last.fo)
    return DmarcReport(org_name=org_name, email=email,
                       report_id=f"{domain}.{day}.{first_id}", begin=begin,
                       end=begin + DAY - 1, policy=policy,
                       records=summed(r.record() for r in rows))


def destinations(rua: str) -> tuple[Destination, ...]:
    """The distinct `mailto:` destinations of a rua= value, at most MAX_DESTINATIONS."""
    found = [d for d in (parse_uri(u) for u in rua.split(",")) if d is not None]
    return tuple(dict.fromkeys(found))[:MAX_DESTINATIONS]


def sized_mail(report: DmarcReport, receiver: str, sender: str, dest: Destination,
               now: float) -> bytes | None:
    """The report mail for `dest`, or the short one saying the report exceeds the limit
    when the full one does, or None when even that does not fit."""
    stamp = datetime.fromtimestamp(now, UTC)
    mail = report_mail(report, receiver, sender, [dest.address], stamp)
    if not dest.limit or len(mail) <= dest.limit:
        return mail
    error = (f"the report of {len(mail)} bytes exceeds the size limit of {dest.limit} "
             "bytes in your rua= address")
    short = report_mail(replace(report, records=(), errors=(error,)), receiver, sender,
                        [dest.address], stamp)
    return short if len(short) <= dest.limit else None


@dataclass
class Outcome:
    """What happened to one (policy domain, day) report."""

    domain: str
    day: str
    messages: int
    queued: list[tuple[str, str]] = field(default_factory=list)     # (address, queue id)
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (address, why)
    marked: bool = False


class AggregateSender:
    """Builds and queues the reports not yet sent; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection, directory: SqliteDirectory,
                 deliverer: Deliverer | None, txt: Txt, *, hostname: str,
                 org_name: str) -> None:
        """`deliverer` None: a dry run only (nothing is queued or marked)."""
        self._conn = conn
        self._directory = directory
        self._deliverer = deliverer
        self._txt = txt
        self._hostname = hostname
        self._org_name = org_name or hostname

    @classmethod
    def from_settings(cls, settings: Settings, conn: sqlite3.Connection,
                      deliverer: Deliverer | None) -> AggregateSender:
        lookup = TxtLookup(settings.get_str("outbound.resolver"),
                           float(settings.get_int("checks.dns_timeout")))
        return cls(conn, SqliteDirectory(conn), deliverer, lookup.txt,
                   hostname=settings.get_str("server.hostname"),
                   org_name=settings.get_str("reports.org_name"))

    async def run(self, day: str | None = None, dry_run: bool = False,
                  now: float | None = None) -> list[Outcome]:
        """Prune rows older than KEEP_DAYS (not on a dry run), then send the reports not
        yet sent: of `day`, or of every day before today (UTC)."""
        now = time.time() if now is None else now
        if not dry_run:      # first: days too old to report are not sent at all
            pruned = await asyncio.to_thread(evaluations.prune, self._conn,
                                             evaluations.utc_day(now - KEEP_DAYS * DAY))
            if pruned:
                log.event("dmarc_report.pruned", rows=pruned)
        today = evaluations.utc_day(now)
        todo = await asyncio.to_thread(evaluations.pending, self._conn, today, day)
        return [await self.send(domain, when, dry_run, now) for domain, when in todo]

    async def send(self, domain: str, day: str, dry_run: bool, now: float) -> Outcome:
        """Build the report of (domain, day) and queue it to each verified destination."""
        found = await asyncio.to_thread(evaluations.unreported, self._conn, domain, day)
        rows = [row for _, row in found]
        outcome = Outcome(domain, day, len(rows))
        ours = primary_domain(self._hostname, self._directory.list_domains())
        if not rows or ours is None:
            outcome.skipped.append(("-", "no local domain to send from" if rows else
                                    "nothing to report"))
            return outcome
        email = f"postmaster@{ours}"
        report = build_report(domain, day, rows, self._org_name, email, found[0][0])
        temporary = False
        for dest in destinations(rows[-1].rua):
            status, targets = await verify(domain, dest, self._txt)
            if status != "ok":
                temporary |= status == "temperror"
                outcome.skipped.append((dest.address, status if status == "temperror" else
                                        "no external destination record (RFC 7489 7.1)"))
            for target in targets:
                await self._queue(report, ours, email, target, dry_run, now, outcome)
        if not dry_run and (outcome.queued or not temporary):
            await asyncio.to_thread(evaluations.mark_reported, self._conn, domain, day,
                                    found[-1][0])
            outcome.marked = True
        log.event("dmarc_report.done", domain=domain, day=day, messages=len(rows),
                  queued=len(outcome.queued), skipped=len(outcome.skipped), dry_run=dry_run)
        return outcome

    async def _queue(self, report: DmarcReport, receiver: str, email: str,
                     dest: Destination, dry_run: bool, now: float, outcome: Outcome) -> None:
        mail = sized_mail(report, receiver, email, dest, now)
        target = self._accepted(dest.address)
        if mail is None or target is None:
            outcome.skipped.append((dest.address, "over its size limit" if mail is None
                                    else "not a deliverable address"))
            return
        if dry_run or self._deliverer is None:
            outcome.queued.append((dest.address, "dry-run"))
            return
        queue_id = await self._deliverer.accept(
            mail, email, [target], smtputf8=not dest.address.isascii(),
            body_8bit=not mail.isascii())
        outcome.queued.append((dest.address, queue_id))
        log.event("dmarc_report.queued", queue_id=queue_id, domain=report.domain,
                  report_id=report.report_id, size=len(mail))

    def _accepted(self, address: str) -> Accepted | None:
        """The recipient as the Deliverer wants it (a local one through the directory)."""
        try:
            parsed = parse_address(address)
        except AddressError:
            return None
        resolution = self._directory.resolve(parsed)
        if resolution.status in (RecipientStatus.UNKNOWN, RecipientStatus.DISABLED):
            return None
        if resolution.status is RecipientStatus.NOT_LOCAL:
            resolution = Resolution(RecipientStatus.NOT_LOCAL)
        return Accepted(str(parsed), resolution)


def seconds_to_next_run(now: float) -> float:
    """Seconds from `now` to SEND_DELAY after the next UTC midnight."""
    return (now // DAY + 1) * DAY + SEND_DELAY - now


async def run_daily(settings: Settings, deliverer: Deliverer) -> None:
    """The engine's task: send what is due now (days missed while stopped), then once a
    day after UTC midnight. Errors are logged and the next day tries again."""
    sender = AggregateSender.from_settings(
        settings, await asyncio.to_thread(open_database, settings.data_dir), deliverer)
    while True:
        try:
            await sender.run()
        except Exception as exc:
            log.error("dmarc_report.failed", exc)
        wait = seconds_to_next_run(time.time())
        log.event("dmarc_report.next_run", logging.DEBUG, seconds=int(wait))
        await asyncio.sleep(wait)
