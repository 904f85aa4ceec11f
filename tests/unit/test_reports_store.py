"""Report storage in a real mailstead.db (migration 0002) and the engine-side intake:
stored once per (kind, org, report id), queries for the console, pruning, report addresses,
and `offer` running in a real thread pool after delivery."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from data.reports.samples import google_dmarc_mail, microsoft_dmarc_mail, sample, tlsrpt_mail

from appliance.pipeline.route import Accepted
from appliance.reports.addresses import ReportAddresses, parse_addresses
from appliance.reports.dmarc import parse_dmarc
from appliance.reports.intake import DAY, MAX_PENDING, ReportIntake, is_local
from appliance.reports.model import DEFAULT_LIMITS, DmarcReport
from appliance.reports.store import ReportStore
from appliance.reports.tlsrpt import parse_tlsrpt
from appliance.settings import SettingsError, load_settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox, RecipientStatus, Resolution

NOW = 1_700_200_000
POSTMASTER = Mailbox(1, "postmaster@example.test", Path("mail/example.test/postmaster"))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path)
    SqliteDirectory(connection).add_domain("example.test")
    yield connection
    connection.close()


@pytest.fixture
def store(conn: sqlite3.Connection) -> ReportStore:
    return ReportStore(conn)


def google() -> DmarcReport:
    return parse_dmarc(sample("google_dmarc.xml"))


def test_save_once_per_org_and_report_id(store: ReportStore,
                                         conn: sqlite3.Connection) -> None:
    first, new = store.save(google(), "mail Q1", NOW)
    assert new
    assert store.save(google(), "mail Q2", NOW + 60) == (first, False)
    assert conn.execute("SELECT count(*) FROM dmarc_records").fetchone()[0] == 2
    other_org = replace(google(), org_name="yahoo.com")
    assert store.save(other_org, "mail Q3", NOW)[1]      # the same id from another org


def test_save_is_whole_or_nothing(store: ReportStore, conn: sqlite3.Connection,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(row_id: int, report: DmarcReport) -> None:
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(store, "_insert_records", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.save(google(), "mail Q1", NOW)
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM reports").fetchone()[0] == 0
    monkeypatch.undo()
    assert store.save(google(), "mail Q2", NOW)[1]       # not taken for a duplicate


def test_get_returns_records_and_policies(store: ReportStore) -> None:
    dmarc_id, _ = store.save(parse_dmarc(sample("microsoft_dmarc.xml")), "import x", NOW)
    tls_id, _ = store.save(parse_tlsrpt(sample("rfc8460_tlsrpt.json")), "import y", NOW)
    dmarc = store.get(dmarc_id)
    assert dmarc is not None
    assert dmarc["details"]["policy_published"]["fo"] == "0"
    assert [r["passed"] for r in dmarc["records"]] == [True, False]
    assert dmarc["records"][1]["auth_results"]["reasons"] == [
        {"type": "local_policy", "comment": "arc=pass as.1.list.example=pass"}]
    tls = store.get(tls_id)
    assert tls is not None
    (policy,) = tls["policies"]
    assert policy["policy"]["mx-host"] == ["*.mail.company-y.example"]
    assert [f["failed_sessions"] for f in policy["failures"]] == [100, 200, 3]
    assert store.get(9999) is None


def test_list_filters_by_domain_kind_and_dates(store: ReportStore) -> None:
    store.save(google(), "a", NOW)
    store.save(parse_dmarc(sample("dmarcbis_dmarc.xml")), "b", NOW)      # from 1979
    store.save(parse_tlsrpt(sample("rfc8460_tlsrpt.json")), "c", NOW)    # company-y.example
    assert [r.org_name for r in store.list_reports(domain="example.test")] == [
        "google.com", "Sample Reporter"]
    assert [r.org_name for r in store.list_reports(domain="company-y.example")] == [
        "Company-X"]
    assert [r.kind for r in store.list_reports(kind="tlsrpt")] == ["tlsrpt"]
    assert [r.org_name for r in store.list_reports(since=1_600_000_000)] == ["google.com"]
    assert [r.org_name for r in store.list_reports(until=400_000_000)] == ["Sample Reporter"]
    assert len(store.list_reports(limit=1)) == 1


def test_failing_sources_sum_over_reports(store: ReportStore) -> None:
    store.save(google(), "a", NOW)
    store.save(replace(google(), report_id="second"), "b", NOW)
    store.save(parse_dmarc(sample("microsoft_dmarc.xml")), "c", NOW)
    failing = store.failing_sources("example.test")
    assert [(f.source_ip, f.messages, f.reports) for f in failing] == [
        ("203.0.113.99", 6, 2), ("198.51.100.7", 2, 1)]
    assert failing[0].dispositions == "quarantine"
    assert store.failing_sources("other.test") == []
    assert store.failing_sources("example.test", since=1_800_000_000) == []


def test_tls_failures_by_result_type(store: ReportStore) -> None:
    store.save(parse_tlsrpt(sample("rfc8460_tlsrpt.json")), "a", NOW)
    store.save(parse_tlsrpt(sample("google_tlsrpt.json")), "b", NOW)
    rows = store.tls_failures()
    assert rows[0] == {"policy_domain": "company-y.example",
                       "result_type": "starttls-not-supported",
                       "receiving_mx_hostname": "mx2.mail.company-y.example", "sessions": 200}
    ours = store.tls_failures("example.test")
    assert [(r["result_type"], r["sessions"]) for r in ours] == [
        ("certificate-host-mismatch", 2)]


def test_prune_deletes_old_reports_with_their_rows(store: ReportStore,
                                                   conn: sqlite3.Connection) -> None:
    store.save(google(), "old", NOW - 200 * DAY)
    store.save(parse_tlsrpt(sample("rfc8460_tlsrpt.json")), "old", NOW - 200 * DAY)
    store.save(parse_dmarc(sample("microsoft_dmarc.xml")), "new", NOW)
    assert store.prune(NOW - 180 * DAY) == 2
    assert [r.source for r in store.list_reports()] == ["new"]
    for table, left in (("dmarc_records", 2), ("tlsrpt_policies", 0), ("tlsrpt_failures", 0)):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == left


# -- report addresses -------------------------------------------------------------------------

def accepted(address: str, mailboxes: tuple[Mailbox, ...] = (POSTMASTER,)) -> Accepted:
    status = RecipientStatus.DELIVER if mailboxes else RecipientStatus.NOT_LOCAL
    return Accepted(address, Resolution(status, mailboxes))


def test_report_addresses() -> None:
    addresses = ReportAddresses.from_setting("postmaster, DMARC@Reports.example.test")
    assert addresses.matches(accepted("PostMaster@example.test"))
    assert addresses.matches(accepted("dmarc@reports.example.test"))
    assert not addresses.matches(accepted("alice@example.test"))
    assert not addresses.matches(accepted("postmaster@remote.test", ()))   # not delivered here
    assert not ReportAddresses.from_setting("")
    assert parse_addresses(" a ,b@c ") == (frozenset({"a"}), frozenset({"b@c"}))
    with pytest.raises(ValueError, match="commas"):
        parse_addresses("a,,b")


def test_addresses_setting_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "mailstead.toml"
    config.write_text('[reports]\naddresses = "post master"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"reports\.addresses"):
        load_settings(config, {})
    config.write_text('[reports]\naddresses = ""\nretention_days = 30\n', encoding="utf-8")
    assert load_settings(config, {})["reports.retention_days"] == 30


def test_is_local_includes_subdomains() -> None:
    assert is_local("example.test", ["example.test"])
    assert is_local("news.example.test", ["example.test"])
    assert not is_local("badexample.test", ["example.test"])


# -- intake -----------------------------------------------------------------------------------

def intake(conn: sqlite3.Connection, executor: ThreadPoolExecutor,
           clock: float = NOW) -> ReportIntake:
    return ReportIntake(ReportStore(conn), SqliteDirectory(conn), executor,
                        ReportAddresses.from_setting("postmaster"), retention_days=180,
                        limits=DEFAULT_LIMITS, clock=lambda: clock)


def test_process_stores_reports_about_local_domains(conn: sqlite3.Connection,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with ThreadPoolExecutor(1) as executor, caplog.at_level("DEBUG", logger="mailstead"):
        worker = intake(conn, executor)
        assert len(worker.process("Q1", google_dmarc_mail(), "mail Q1")) == 1
        assert worker.process("Q2", google_dmarc_mail(), "mail Q2") == []     # duplicate
        foreign = tlsrpt_mail(document=sample("rfc8460_tlsrpt.json"))     # company-y.example
        assert worker.process("Q3", foreign, "mail Q3") == []
        assert worker.process("Q4", b"Subject: hello\r\n\r\nhi\r\n", "mail Q4") == []
    events = [(r.getMessage(), getattr(r, "reason", None)) for r in caplog.records
              if r.getMessage().startswith("reports.")]
    assert events == [("reports.stored", None), ("reports.duplicate", None),
                      ("reports.rejected", "not about a local domain"),
                      ("reports.none_attached", None)]


def test_process_prunes_after_retention(conn: sqlite3.Connection) -> None:
    with ThreadPoolExecutor(1) as executor:
        intake(conn, executor, NOW - 181 * DAY).process("Q1", google_dmarc_mail(), "mail Q1")
        intake(conn, executor).process("Q2", microsoft_dmarc_mail(), "mail Q2")
    assert [r.org_name for r in ReportStore(conn).list_reports()] == ["Enterprise Outlook"]


def test_offer_runs_in_the_pool_only_for_report_addresses(
        conn: sqlite3.Connection, caplog: pytest.LogCaptureFixture) -> None:
    async def deliver_three() -> None:
        with ThreadPoolExecutor(2) as executor:
            worker = intake(conn, executor)
            worker.offer("Q1", google_dmarc_mail(), [accepted("alice@example.test")], "")
            worker.offer("Q2", tlsrpt_mail(), [accepted("postmaster@example.test")], "")
            worker.offer("Q3", microsoft_dmarc_mail(), [accepted("postmaster@example.test")],
                         "Junk")
            for _ in range(200):
                if ReportStore(conn).list_reports():
                    break
                await asyncio.sleep(0.01)

    with caplog.at_level("INFO", logger="mailstead"):
        asyncio.run(deliver_three())
    assert [r.kind for r in ReportStore(conn).list_reports()] == ["tlsrpt"]
    rejected = [r for r in caplog.records if r.getMessage() == "reports.rejected"]
    assert [(getattr(r, "queue_id", None), getattr(r, "reason", None))
            for r in rejected] == [("Q3", "delivered to Junk")]


def test_attack_report_flood_is_bounded(conn: sqlite3.Connection,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """While the one drain job is held up, at most MAX_PENDING messages wait; the rest are
    only logged (they stay in the mailbox), and every waiting one is processed later."""
    release = threading.Event()

    async def flood() -> None:
        with ThreadPoolExecutor(1) as executor:
            executor.submit(release.wait, 30)          # the pool's only thread is busy
            worker = intake(conn, executor)
            for n in range(MAX_PENDING + 8):
                worker.offer(f"Q{n}", google_dmarc_mail(), [accepted(POSTMASTER.address)], "")
            release.set()
            for _ in range(500):
                if len(duplicates()) == MAX_PENDING - 1:
                    break
                await asyncio.sleep(0.01)

    def duplicates() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "reports.duplicate"]

    with caplog.at_level("INFO", logger="mailstead"):
        asyncio.run(flood())
    busy = [r for r in caplog.records if getattr(r, "reason", None) == "intake busy"]
    assert [getattr(r, "queue_id", None) for r in busy] == [
        f"Q{n}" for n in range(MAX_PENDING, MAX_PENDING + 8)]
    assert len(duplicates()) == MAX_PENDING - 1
    assert len(ReportStore(conn).list_reports()) == 1
