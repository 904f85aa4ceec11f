"""Our DMARC evaluations on the MX, kept for the aggregate reports we send (RFC 7489 7.2):
the row for each author domain whose DMARC record asks for reports (`rua=mailto:`), the
recorder that writes rows to mailstead.db off the event loop, and the table's queries.

Recording must never slow or fail a message: `EvaluationRecorder.record` only appends to a
bounded in-memory batch; one task at a time writes the batch in a worker thread in one
BEGIN IMMEDIATE transaction (several MX worker processes write to the same WAL database).
Errors are logged, rows beyond the bound are dropped and counted in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.checks import dmarc
from appliance.checks.dkim_verify import DkimResult
from appliance.checks.result import Verdict
from appliance.checks.spf import SpfOutcome
from appliance.core import log
from appliance.reports.model import DkimAuth, DmarcRecord, SpfAuth
from appliance.storage.db import immediate_transaction, open_database

MAX_PENDING = 10_000      # rows waiting for the writer; more are dropped (logged)
MAX_TEXT = 255            # characters kept of a name the sender chose (HELO, s=, d=)
COLUMNS = ("day", "evaluated_at", "policy_domain", "p", "sp", "pct", "adkim", "aspf", "fo",
           "rua", "source_ip", "header_from", "envelope_from", "spf_domain", "spf_scope",
           "spf_result", "dkim", "disposition", "dkim_aligned", "spf_aligned", "reasons")
# The statements, built once from the constant column names (no outside text in them).
INSERT = (f"INSERT INTO dmarc_evaluations ({', '.join(COLUMNS)}) "  # noqa: S608
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM dmarc_evaluations"  # noqa: S608


@dataclass(frozen=True)
class Evaluation:
    """One message's DMARC evaluation for one author domain (a row of the table).

    Attributes:
        day: the UTC day, YYYY-MM-DD (reports cover UTC days, RFC 7489 7.2.1.1).
        policy_domain: where the record was found (the author or its Organizational Domain).
        p, sp, pct, adkim, aspf, fo: the policy published; rua: its URIs, comma separated.
        envelope_from: the MAIL FROM domain ("" for the null sender).
        spf_scope: "mfrom" or "helo" (appendix C's SPFDomainScope).
        dkim: (domain, selector, result) of each signature.
        disposition: the policy applied: none, quarantine or reject.
        dkim_aligned, spf_aligned: "pass" or "fail" (appendix C's policy_evaluated).
        reasons: (PolicyOverrideType, comment) when the disposition differs from p=.
    """

    day: str
    evaluated_at: int
    policy_domain: str
    p: str
    sp: str
    pct: int
    adkim: str
    aspf: str
    fo: str
    rua: str
    source_ip: str
    header_from: str
    envelope_from: str
    spf_domain: str
    spf_scope: str
    spf_result: str
    dkim: tuple[tuple[str, str, str], ...]
    disposition: str
    dkim_aligned: str
    spf_aligned: str
    reasons: tuple[tuple[str, str], ...] = ()

    def row(self) -> tuple[object, ...]:
        """The values in COLUMNS order (tuples as JSON)."""
        values = [getattr(self, name) for name in COLUMNS]
        return tuple(json.dumps(v) if isinstance(v, tuple) else v for v in values)

    def record(self) -> DmarcRecord:
        """The report record for this one message (`aggregate.summed` adds them up)."""
        return DmarcRecord(
            source_ip=self.source_ip, count=1, disposition=self.disposition,
            dkim=self.dkim_aligned, spf=self.spf_aligned, header_from=self.header_from,
            envelope_from=self.envelope_from, reasons=self.reasons,
            dkim_results=tuple(DkimAuth(d, s, r) for d, s, r in self.dkim),
            spf_results=(SpfAuth(self.spf_domain, self.spf_scope, self.spf_result),))


def utc_day(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def wants_reports(record: dmarc.DmarcRecord) -> bool:
    """True when the record names a `mailto:` report address (the only scheme we send to)."""
    return any(uri.lower().startswith("mailto:") for uri in record.rua)


@dataclass(frozen=True)
class Message:
    """What the authentication check knew about one message, for its rows."""

    client_ip: str
    mail_from: str
    spf: SpfOutcome
    dkim: Sequence[DkimResult]
    verdict: Verdict          # what the authentication check decided
    reason: str               # its log reason (names a trusted ARC sealer on an override)


def from_check(policies: dmarc.Policies, outcome: dmarc.DmarcOutcome, message: Message,
               now: float) -> list[Evaluation]:
    """The rows for a message's author domains whose records want reports; none for a
    message deferred (TEMPFAIL: it will come again and be counted then)."""
    if message.verdict == Verdict.TEMPFAIL:
        return []
    rows = []
    for found, result in zip(policies.found, outcome.results, strict=True):
        if found.record is not None and found.status == "found" \
                and wants_reports(found.record):
            rows.append(_evaluation(found, found.record, result, message, now))
    return rows


def _evaluation(found: dmarc.Discovery, record: dmarc.DmarcRecord,
                result: dmarc.AuthorResult, message: Message, now: float) -> Evaluation:
    author, spf = result.domain, message.spf
    disposition, reasons = _applied(result, message)
    dkim_ok = any(d.result == "pass" and dmarc.aligned(author, d.domain, record.adkim)
                  for d in message.dkim)
    spf_ok = spf.result == "pass" and dmarc.aligned(author, spf.domain, record.aspf)
    return Evaluation(
        day=utc_day(now), evaluated_at=int(now), policy_domain=found.found_at,
        p=record.policy, sp=record.subdomain_policy, pct=record.pct, adkim=record.adkim,
        aspf=record.aspf, fo=":".join(record.fo), rua=",".join(record.rua),
        source_ip=message.client_ip, header_from=_clean(author),
        envelope_from=_clean(dmarc.domain_of(message.mail_from)),
        spf_domain=_clean(spf.domain), spf_scope="helo" if spf.scope == "helo" else "mfrom",
        spf_result=spf.result, dkim=tuple(
            (_clean(d.domain), _clean(d.selector), d.result) for d in message.dkim if d.domain),
        disposition=disposition, dkim_aligned="pass" if dkim_ok else "fail",
        spf_aligned="pass" if spf_ok else "fail", reasons=reasons)


def _clean(text: str) -> str:
    """A name the sender chose (the HELO name for SPF's helo scope, a signature's d= and
    s=) as report text: printable characters only (XML 1.0 has no place for control
    characters) and at most MAX_TEXT of them."""
    return "".join(c for c in text if c.isprintable())[:MAX_TEXT]


def _applied(result: dmarc.AuthorResult,
             message: Message) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The disposition applied and why it differs from the policy (RFC 7489 appendix C
    PolicyOverrideType): a trusted ARC sealer's override, or outside pct=."""
    if result.result != "fail":
        return "none", ()
    if result.disposition != "none" and message.verdict in (Verdict.ACCEPT, Verdict.TAG):
        sealer = message.reason.rpartition("ARC sealed by ")[2] if "ARC sealed by " \
            in message.reason else ""
        return "none", (("trusted_forwarder", f"ARC sealed by {sealer}" if sealer else ""),)
    if result.disposition != result.policy:
        return result.disposition, (("sampled_out", ""),)
    return result.disposition, ()


# -- the table ---------------------------------------------------------------------------

def insert(conn: sqlite3.Connection, rows: Sequence[Evaluation]) -> None:
    """Write `rows` in one write transaction."""
    with immediate_transaction(conn):
        conn.executemany(INSERT, [r.row() for r in rows])


def pending(conn: sqlite3.Connection, before: str,
            day: str | None = None) -> list[tuple[str, str]]:
    """(policy domain, day) of the rows not yet reported: of `day`, or of days before
    `before` (YYYY-MM-DD), oldest first."""
    found = conn.execute(
        "SELECT DISTINCT policy_domain, day FROM dmarc_evaluations WHERE reported = 0 AND "
        "(day = ? OR (? IS NULL AND day < ?)) ORDER BY day, policy_domain",
        (day, day, before)).fetchall()
    return [(str(r[0]), str(r[1])) for r in found]


def unreported(conn: sqlite3.Connection, domain: str,
               day: str) -> list[tuple[int, Evaluation]]:
    """(row id, row) of the rows not yet reported for (domain, day), in id order."""
    found = conn.execute(
        SELECT + " WHERE policy_domain = ? AND day = ? AND reported = 0 ORDER BY id",
        (domain, day)).fetchall()
    return [(int(r[0]), _from_row(tuple(r)[1:])) for r in found]


def _from_row(values: tuple[object, ...]) -> Evaluation:
    named = dict(zip(COLUMNS, values, strict=True))
    named["dkim"] = tuple(tuple(d) for d in json.loads(str(named["dkim"])))
    named["reasons"] = tuple(tuple(r) for r in json.loads(str(named["reasons"])))
    return Evaluation(**named)      # type: ignore[arg-type]


def mark_reported(conn: sqlite3.Connection, domain: str, day: str, last_id: int) -> int:
    """Mark the rows up to `last_id` of (domain, day) reported; return how many."""
    with immediate_transaction(conn):
        return conn.execute(
            "UPDATE dmarc_evaluations SET reported = 1 WHERE policy_domain = ? AND day = ? "
            "AND id <= ? AND reported = 0", (domain, day, last_id)).rowcount


def prune(conn: sqlite3.Connection, before: str) -> int:
    """Delete the rows of days before `before`, reported or not; return how many."""
    with immediate_transaction(conn):
        return conn.execute("DELETE FROM dmarc_evaluations WHERE day < ?",
                            (before,)).rowcount


# -- the recorder the authentication check calls -------------------------------------------

class EvaluationRecorder:
    """Batches rows in memory and writes them from a worker thread; never raises."""

    def __init__(self, data_dir: Path, max_pending: int = MAX_PENDING) -> None:
        self._data_dir = data_dir
        self._max = max_pending
        self._pending: list[Evaluation] = []
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None

    def record(self, rows: Sequence[Evaluation]) -> None:
        """Queue `rows` for writing (call from the event loop)."""
        if not rows:
            return
        room = self._max - len(self._pending)
        self._pending.extend(rows[:max(room, 0)])
        self._dropped += max(len(rows) - max(room, 0), 0)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def flushed(self) -> None:
        """Wait until every row queued so far is written (or its write failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
            if dropped:
                log.event("dmarc_evaluations.dropped", logging.WARNING, rows=dropped)
            try:
                await loop.run_in_executor(None, self._write, batch)
            except Exception as exc:       # recording is best effort: mail goes on
                log.error("dmarc_evaluations.write_failed", exc, rows=len(batch))

    def _write(self, batch: list[Evaluation]) -> None:
        if self._conn is None:
            self._conn = open_database(self._data_dir)
        insert(self._conn, batch)
