"""Reports in mailstead.db (migration 0002): saving once, the console's queries, pruning.

A report is identified by (kind, org_name, report_id): RFC 7489 7.2.1.1 makes report_id
unique per reporting organisation, and senders do resend. Saving is one transaction, so a
report is stored whole or not at all. One connection may be shared by threads: a lock
serialises its use (SQLite transactions on one connection must not interleave).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from typing import Any

from appliance.reports.model import DmarcReport, Report, TlsReport
from appliance.storage.db import immediate_transaction

SUMMARY_COLUMNS = ("id, kind, org_name, report_id, contact, domain, date_begin, date_end, "
                   "received_at, source, messages, failed")


@dataclass(frozen=True)
class StoredReport:
    """One row of the reports table (the summary the list shows)."""

    id: int
    kind: str
    org_name: str
    report_id: str
    contact: str
    domain: str
    date_begin: int
    date_end: int
    received_at: int
    source: str
    messages: int
    failed: int


@dataclass(frozen=True)
class FailingSource:
    """Messages from one source IP that failed DMARC for a domain, summed over reports."""

    source_ip: str
    header_from: str
    messages: int
    reports: int
    dispositions: str       # the distinct dispositions applied, comma separated


class ReportStore:
    """The report tables of one mailstead.db connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def save(self, report: Report, source: str, now: int) -> tuple[int, bool]:
        """Store `report` unless the same organisation's report id is stored already.

        Returns:
            (row id, True) for a new report; (the stored copy's id, False) for a repeat.
        """
        with self._lock, immediate_transaction(self._conn):
            row_id = self._insert(report, source, now)
            if row_id is None:           # INSERT OR IGNORE wrote nothing: commit is a no-op
                return self._existing(report), False
            if isinstance(report, DmarcReport):
                self._insert_records(row_id, report)
            else:
                self._insert_policies(row_id, report)
        return row_id, True

    def _insert(self, report: Report, source: str, now: int) -> int | None:
        contact = report.email if isinstance(report, DmarcReport) else report.contact
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO reports (kind, org_name, report_id, contact, domain, "
            "date_begin, date_end, received_at, source, messages, failed, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (report.kind, report.org_name, report.report_id, contact, report.domain,
             report.begin, report.end, now, source, report.messages, report.failed,
             json.dumps(_details(report))))
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def _existing(self, report: Report) -> int:
        row = self._conn.execute(
            "SELECT id FROM reports WHERE kind = ? AND org_name = ? AND report_id = ?",
            (report.kind, report.org_name, report.report_id)).fetchone()
        return int(row[0])

    def _insert_records(self, row_id: int, report: DmarcReport) -> None:
        self._conn.executemany(
            "INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim, spf, "
            "passed, header_from, envelope_from, envelope_to, auth_results) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(row_id, r.source_ip, r.count, r.disposition, r.dkim, r.spf, int(r.passed),
              r.header_from, r.envelope_from, r.envelope_to, json.dumps({
                  "dkim": [asdict(d) for d in r.dkim_results],
                  "spf": [asdict(s) for s in r.spf_results],
                  "reasons": [{"type": t, "comment": c} for t, c in r.reasons]}))
             for r in report.records])

    def _insert_policies(self, row_id: int, report: TlsReport) -> None:
        for policy in report.policies:
            cursor = self._conn.execute(
                "INSERT INTO tlsrpt_policies (report, policy_type, policy_domain, policy, "
                "successful, failed) VALUES (?, ?, ?, ?, ?, ?)",
                (row_id, policy.policy_type, policy.policy_domain,
                 json.dumps({"policy-string": policy.policy_strings,
                             "mx-host": policy.mx_hosts}),
                 policy.successful, policy.failed))
            self._conn.executemany(
                "INSERT INTO tlsrpt_failures (policy, result_type, failed_sessions, "
                "sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, "
                "additional_information, failure_reason_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(cursor.lastrowid, f.result_type, f.failed_sessions, f.sending_mta_ip,
                  f.receiving_mx_hostname, f.receiving_mx_helo, f.receiving_ip,
                  f.additional_information, f.failure_reason_code)
                 for f in policy.failures])

    def list_reports(self, *, domain: str | None = None, kind: str | None = None,
             since: int | None = None, until: int | None = None,
             limit: int = 1000) -> list[StoredReport]:
        """Reports newest first; `since`/`until` select by the reported date range."""
        where, args = _filters(domain, kind, since, until)
        rows = self._query(f"SELECT {SUMMARY_COLUMNS} FROM reports {where} "  # noqa: S608
                           "ORDER BY date_end DESC, id DESC LIMIT ?", (*args, limit))
        return [StoredReport(**dict(row)) for row in rows]

    def get(self, row_id: int) -> dict[str, Any] | None:
        """One report with its rows, as JSON-ready data; None when there is none."""
        rows = self._query(f"SELECT {SUMMARY_COLUMNS}, details FROM reports "  # noqa: S608
                           "WHERE id = ?", (row_id,))
        if not rows:
            return None
        report = dict(rows[0])
        report["details"] = json.loads(report["details"])
        if report["kind"] == "dmarc":
            report["records"] = self._records(row_id)
        else:
            report["policies"] = self._policies(row_id)
        return report

    def _records(self, row_id: int) -> list[dict[str, Any]]:
        rows = self._query("SELECT source_ip, count, disposition, dkim, spf, passed, "
                           "header_from, envelope_from, envelope_to, auth_results "
                           "FROM dmarc_records WHERE report = ? ORDER BY id", (row_id,))
        return [{**dict(r), "passed": bool(r["passed"]),
                 "auth_results": json.loads(r["auth_results"])} for r in rows]

    def _policies(self, row_id: int) -> list[dict[str, Any]]:
        policies = []
        for row in self._query("SELECT id, policy_type, policy_domain, policy, successful, "
                               "failed FROM tlsrpt_policies WHERE report = ? ORDER BY id",
                               (row_id,)):
            entry = {**dict(row), "policy": json.loads(row["policy"])}
            entry["failures"] = [dict(f) for f in self._query(
                "SELECT result_type, failed_sessions, sending_mta_ip, receiving_mx_hostname, "
                "receiving_mx_helo, receiving_ip, additional_information, failure_reason_code "
                "FROM tlsrpt_failures WHERE policy = ? ORDER BY id", (entry.pop("id"),))]
            policies.append(entry)
        return policies

    def failing_sources(self, domain: str | None = None,
                        since: int | None = None) -> list[FailingSource]:
        """Source IPs whose mail failed DMARC (neither aligned DKIM nor SPF passed), most
        messages first: the senders an admin must either authorise or expose."""
        where, args = _filters(domain, "dmarc", since, None)
        rows = self._query(
            "SELECT source_ip, header_from, sum(count) AS messages, "  # noqa: S608
            "count(DISTINCT report) AS reports, group_concat(DISTINCT disposition) AS d "
            "FROM dmarc_records WHERE passed = 0 AND report IN "
            f"(SELECT id FROM reports {where}) "
            "GROUP BY source_ip, header_from ORDER BY messages DESC, source_ip", args)
        return [FailingSource(r["source_ip"], r["header_from"], r["messages"], r["reports"],
                              r["d"] or "") for r in rows]

    def tls_failures(self, domain: str | None = None,
                     since: int | None = None) -> list[dict[str, Any]]:
        """TLS failures by result type and receiving MX, most sessions first."""
        where, args = _filters(None, "tlsrpt", since, None)
        policy_filter = "AND p.policy_domain = ? " if domain else ""
        rows = self._query(
            "SELECT p.policy_domain, f.result_type, f.receiving_mx_hostname, "  # noqa: S608
            "sum(f.failed_sessions) AS sessions FROM tlsrpt_failures f "
            "JOIN tlsrpt_policies p ON f.policy = p.id "
            f"WHERE p.report IN (SELECT id FROM reports {where}) {policy_filter}"
            "GROUP BY p.policy_domain, f.result_type, f.receiving_mx_hostname "
            "ORDER BY sessions DESC", (*args, *([domain] if domain else [])))
        return [dict(r) for r in rows]

    def prune(self, before: int) -> int:
        """Delete reports received before `before` (with their rows); return how many."""
        with self._lock:
            cursor = self._conn.execute("DELETE FROM reports WHERE received_at < ?",
                                        (before,))
        return cursor.rowcount

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args))


def _filters(domain: str | None, kind: str | None, since: int | None,
             until: int | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause over reports (only fixed text; values are parameters)."""
    clauses: list[str] = []
    args: list[Any] = []
    if domain:
        clauses.append("(domain = ? OR id IN (SELECT report FROM tlsrpt_policies "
                       "WHERE policy_domain = ?))")
        args += [domain, domain]
    if kind:
        clauses.append("kind = ?")
        args.append(kind)
    if since is not None:
        clauses.append("date_end >= ?")
        args.append(since)
    if until is not None:
        clauses.append("date_begin < ?")
        args.append(until)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _details(report: Report) -> dict[str, Any]:
    if isinstance(report, DmarcReport):
        return {"policy_published": asdict(report.policy),
                "extra_contact_info": report.extra_contact, "errors": list(report.errors)}
    return {"policy_domains": sorted({p.policy_domain for p in report.policies})}
