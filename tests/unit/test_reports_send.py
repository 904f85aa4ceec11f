"""Our own DMARC aggregate reports: the rows the authentication check records
(reports/evaluations.py) in a real mailstead.db, and the reports built and queued from them
(reports/sender.py) into a real spool, read back with our own intake parser."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.checks import dmarc
from appliance.checks.auth_dns import DnsTempError
from appliance.checks.dkim_verify import DkimResult
from appliance.checks.result import Verdict
from appliance.checks.spf import SpfOutcome
from appliance.core.addresses import primary_domain
from appliance.outbound.spool import Spool
from appliance.pipeline.deliver import Deliverer
from appliance.reports import evaluations
from appliance.reports.aggregate import to_xml
from appliance.reports.dmarc import parse_dmarc
from appliance.reports.evaluations import EvaluationRecorder, Message
from appliance.reports.extract import reports_in_message
from appliance.reports.model import DmarcReport
from appliance.reports.sender import (
    AggregateSender,
    Destination,
    Outcome,
    build_report,
    day_start,
    destinations,
    parse_uri,
    seconds_to_next_run,
    sized_mail,
    verify,
)
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import MaildirStore

DAY1 = "2026-03-01"
NOON1 = day_start(DAY1) + 12 * 3600
SPF_PASS = SpfOutcome("pass", "example.org", "mailfrom", "", "bounce@example.org")
SPF_FAIL = SpfOutcome("fail", "evil.test", "mailfrom", "", "x@evil.test")
DKIM_PASS = DkimResult("pass", "example.org", "s1")


def policies(record: str, author: str = "example.org") -> dmarc.Policies:
    found = dmarc.Discovery("found", dmarc.parse_record(record), author)
    return dmarc.Policies((author,), (found,))


def rows_for(record: str, spf: SpfOutcome, dkim: tuple[DkimResult, ...] = (),
             verdict: Verdict | None = None, reason: str = "",
             seed: int = 1) -> list[evaluations.Evaluation]:
    found = policies(record)
    ids = dmarc.identifiers(spf.result, spf.domain, [(d.result, d.domain) for d in dkim])
    outcome = dmarc.outcome(found, ids, random.Random(seed))
    if verdict is None:
        verdict = {"reject": Verdict.REJECT, "quarantine": Verdict.JUNK}.get(
            outcome.disposition, Verdict.ACCEPT)
    message = Message("192.0.2.7", spf.identity, spf, dkim, verdict, reason)
    return evaluations.from_check(found, outcome, message, NOON1)


REJECT = "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_database(tmp_path)
    yield conn
    conn.close()


# -- what is recorded -----------------------------------------------------------------------

def test_nothing_is_recorded_without_a_mailto_rua() -> None:
    assert rows_for("v=DMARC1; p=reject", SPF_PASS) == []
    assert rows_for("v=DMARC1; p=reject; rua=https://example.org/r", SPF_PASS) == []
    assert len(rows_for(REJECT, SPF_PASS)) == 1


def test_a_passing_message_records_policy_alignment_and_identifiers() -> None:
    (row,) = rows_for("v=DMARC1; p=quarantine; sp=reject; pct=50; adkim=s; "
                      "rua=mailto:dmarc@example.org!10m", SPF_PASS, (DKIM_PASS,))
    assert (row.day, row.policy_domain, row.header_from, row.envelope_from) == (
        DAY1, "example.org", "example.org", "example.org")
    assert (row.p, row.sp, row.pct, row.adkim, row.aspf) == ("quarantine", "reject", 50,
                                                             "s", "r")
    assert row.rua == "mailto:dmarc@example.org!10m"
    assert (row.source_ip, row.spf_scope, row.spf_result) == ("192.0.2.7", "mfrom", "pass")
    assert row.dkim == (("example.org", "s1", "pass"),)
    assert (row.disposition, row.dkim_aligned, row.spf_aligned) == ("none", "pass", "pass")
    assert row.reasons == ()


def test_a_rejected_message_counts_with_disposition_reject() -> None:
    (row,) = rows_for(REJECT, SPF_FAIL)
    assert (row.disposition, row.dkim_aligned, row.spf_aligned) == ("reject", "fail", "fail")
    assert row.envelope_from == "evil.test"


def test_overrides_are_reported_with_their_reason() -> None:
    (arc,) = rows_for(REJECT, SPF_FAIL, verdict=Verdict.ACCEPT,
                      reason="dmarc fail ..., overridden: ARC sealed by lists.test")
    assert (arc.disposition, arc.reasons) == ("none",
                                              (("trusted_forwarder", "ARC sealed by lists.test"),))
    sampled = [rows_for("v=DMARC1; p=reject; pct=1; rua=mailto:d@example.org", SPF_FAIL,
                        seed=seed)[0] for seed in range(20)]
    outside = [r for r in sampled if r.disposition == "quarantine"]
    assert outside
    assert all(r.reasons == (("sampled_out", ""),) for r in outside)


def test_a_deferred_message_is_not_recorded_until_it_comes_back() -> None:
    assert rows_for(REJECT, SPF_FAIL, verdict=Verdict.TEMPFAIL) == []


def test_recorded_rows_read_back_from_the_database(tmp_path: Path,
                                                  db: sqlite3.Connection) -> None:
    rows = rows_for(REJECT, SPF_PASS, (DKIM_PASS,)) + rows_for(REJECT, SPF_FAIL)

    async def record() -> None:
        recorder = EvaluationRecorder(tmp_path)
        recorder.record(rows[:1])
        recorder.record(rows[1:])
        await recorder.flushed()

    asyncio.run(record())
    assert evaluations.pending(db, "2026-03-02") == [("example.org", DAY1)]
    assert evaluations.pending(db, DAY1) == []                  # today's: not yet due
    assert evaluations.pending(db, DAY1, DAY1) == [("example.org", DAY1)]
    assert [row for _, row in evaluations.unreported(db, "example.org", DAY1)] == rows


def test_the_recorder_is_bounded_and_never_raises(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    rows = rows_for(REJECT, SPF_PASS) * 5
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")

    async def record(where: Path, bound: int) -> None:
        recorder = EvaluationRecorder(where, max_pending=bound)
        recorder.record(rows)
        await recorder.flushed()

    asyncio.run(record(not_a_dir, 100))          # the database cannot be opened
    assert "dmarc_evaluations.write_failed" in caplog.text
    asyncio.run(record(tmp_path, 2))
    assert "dmarc_evaluations.dropped" in caplog.text
    conn = open_database(tmp_path)
    assert len(evaluations.unreported(conn, "example.org", DAY1)) == 2
    conn.close()


# -- destinations -----------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "expected"), [
    ("mailto:dmarc@example.org", Destination("dmarc@example.org", 0)),
    ("MAILTO:dmarc@example.org!10m", Destination("dmarc@example.org", 10 * 2**20)),
    ("mailto:d@example.org!512k", Destination("d@example.org", 512 * 1024)),
    ("mailto:d@example.org!2000", Destination("d@example.org", 2000)),
    ("mailto:a%2Cb@example.org", Destination("a,b@example.org", 0)),
    ("mailto:d@example.org?subject=x", Destination("d@example.org", 0)),
    ("https://example.org/reports", None),
    ("mailto:nobody", None),
    ("mailto:d@example.org!10x", None),
    ("mailto:d@example.org!m", None),
])
def test_rua_uris(uri: str, expected: Destination | None) -> None:
    assert parse_uri(uri) == expected


def test_destinations_are_distinct_and_bounded() -> None:
    rua = ",".join(["mailto:a@x.test"] * 3 + [f"mailto:{n}@x.test" for n in "bcdefg"])
    assert [d.address for d in destinations(rua)] == ["a@x.test", "b@x.test", "c@x.test",
                                                      "d@x.test"]


def test_an_external_destination_needs_the_report_record() -> None:
    zone = {"example.org._report._dmarc.reports.test": (b"v=DMARC1",),
            "example.org._report._dmarc.redirect.test": (
                b"v=DMARC1; rua=mailto:other@redirect.test!1m",),
            "example.org._report._dmarc.wrong.test": (b"v=spf1 -all",)}

    async def txt(name: str) -> tuple[bytes, ...]:
        if name.endswith("broken.test"):
            raise DnsTempError("timeout")
        return zone.get(name, ())

    def check(address: str) -> tuple[str, tuple[Destination, ...]]:
        return asyncio.run(verify("example.org", Destination(address), txt))

    assert check("d@reports.test") == ("ok", (Destination("d@reports.test"),))
    assert check("d@mail.example.org") == ("ok", (Destination("d@mail.example.org"),))
    assert check("d@redirect.test") == ("ok", (Destination("other@redirect.test", 2**20),))
    assert check("d@wrong.test") == ("refused", ())
    assert check("d@missing.test") == ("refused", ())
    assert check("d@broken.test") == ("temperror", ())


# -- the report -------------------------------------------------------------------------------

def test_the_report_sums_rows_and_reads_back_with_our_parser() -> None:
    rows = rows_for(REJECT, SPF_PASS, (DKIM_PASS,)) * 3 + rows_for(REJECT, SPF_FAIL)
    report = build_report("example.org", DAY1, rows, "mx.mailstead.test",
                          "postmaster@mailstead.test", 41)
    assert (report.begin, report.end) == (day_start(DAY1), day_start(DAY1) + 86399)
    assert report.report_id == f"example.org.{DAY1}.41"
    assert [(r.source_ip, r.count, r.disposition) for r in report.records] == [
        ("192.0.2.7", 3, "none"), ("192.0.2.7", 1, "reject")]
    assert (report.policy.p, report.policy.domain) == ("reject", "example.org")
    assert parse_dmarc(to_xml(report)) == report


def test_a_size_limit_gets_the_short_report_or_nothing() -> None:
    rows = [evaluations.Evaluation(**{**vars(rows_for(REJECT, SPF_PASS)[0]),
                                      "source_ip": f"192.0.2.{n}"}) for n in range(200)]
    report = build_report("example.org", DAY1, rows, "org", "postmaster@m.test", 1)
    full = sized_mail(report, "m.test", "postmaster@m.test", Destination("d@x.test"), NOON1)
    assert full is not None
    assert reports_in_message(full).reports == (report,)
    short = sized_mail(report, "m.test", "postmaster@m.test",
                       Destination("d@x.test", 2000), NOON1)
    assert short is not None
    assert len(short) <= 2000
    (parsed,) = reports_in_message(short).reports
    assert isinstance(parsed, DmarcReport)
    assert parsed.records == ()
    assert "exceeds the size limit of 2000" in parsed.errors[0]
    assert sized_mail(report, "m.test", "postmaster@m.test", Destination("d@x.test", 100),
                      NOON1) is None


def test_the_primary_domain_and_the_daily_schedule() -> None:
    assert primary_domain("mx.mailstead.test", ["a.test", "mailstead.test"]) == \
        "mailstead.test"
    assert primary_domain("mx.elsewhere.test", ["b.test", "a.test"]) == "a.test"
    assert primary_domain("mx.elsewhere.test", []) is None
    assert seconds_to_next_run(day_start(DAY1) + 60) == 86400 - 60 + 900


def test_the_sender_queues_marks_and_prunes(tmp_path: Path, db: sqlite3.Connection) -> None:
    directory = SqliteDirectory(db)
    directory.add_domain("mailstead.test")
    old = rows_for(REJECT, SPF_PASS)[0]
    evaluations.insert(db, rows_for(REJECT, SPF_PASS) * 2 + rows_for(REJECT, SPF_FAIL))
    evaluations.insert(db, [evaluations.Evaluation(**{**vars(old), "day": "2026-02-01"})])
    spool = Spool(tmp_path / "queue")

    async def txt(name: str) -> tuple[bytes, ...]:
        return ()

    async def run(dry_run: bool) -> list[Outcome]:
        with ThreadPoolExecutor(2) as executor:
            deliverer = Deliverer(MaildirStore(tmp_path), spool, executor)
            sender = AggregateSender(db, directory, None if dry_run else deliverer, txt,
                                     hostname="mx.mailstead.test", org_name="")
            return await sender.run(dry_run=dry_run, now=NOON1 + 86400)

    dry = asyncio.run(run(True))
    assert spool.messages() == []
    assert [(o.day, o.queued) for o in dry] == [
        ("2026-02-01", [("dmarc@example.org", "dry-run")]),
        (DAY1, [("dmarc@example.org", "dry-run")])]
    outcomes = asyncio.run(run(False))      # 2026-02-01 is too old: pruned, not sent
    assert [(o.domain, o.day, o.messages, o.marked) for o in outcomes] == [
        ("example.org", DAY1, 3, True)]
    assert [tuple(r) for r in db.execute("SELECT DISTINCT day FROM dmarc_evaluations")] == [
        (DAY1,)]
    (queued,) = spool.messages()
    (report,) = reports_in_message(spool.read(queued.queue_id)).reports
    assert isinstance(report, DmarcReport)
    assert queued.sender == "postmaster@mailstead.test"
    assert [r.address for r in queued.recipients] == ["dmarc@example.org"]
    assert (report.org_name, report.email) == ("mx.mailstead.test", "postmaster@mailstead.test")
    assert (report.begin, report.domain) == (day_start(DAY1), "example.org")
    assert [(r.count, r.disposition) for r in report.records] == [(2, "none"), (1, "reject")]
    assert evaluations.pending(db, "2026-03-09") == []          # all marked reported
    asyncio.run(run(False))
    assert len(spool.messages()) == 1                            # nothing sent twice
    spool.close()
