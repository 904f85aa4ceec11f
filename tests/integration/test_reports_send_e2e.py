"""End to end: the real engine records its DMARC evaluations of inbound mail, and
`mailstead reports send-aggregate` sends the domain owner our aggregate report (RFC 7489
7.2) through the queue to a real Postfix peer, DKIM-signed by our outbound signer.

A private Knot serves the `test.` zone: the mail world's peer.test, sender.test (SPF for
127/8, `p=reject`, `rua=mailto:alice@peer.test` plus the external-destination record
`sender.test._report._dmarc.peer.test`, RFC 7489 7.1), unverified.test (`rua=` to
bob@peer.test, no such record: nothing may be sent there), unanswered.test (its record's
lookup fails: the rows wait for the next run) and evil.test (`-all`); and
inbox.test, our domain, with the records `mailstead dns records` prints. The report that
arrives at Postfix is read with our own intake parser and its signature checked by dkimpy
against the same Knot.
"""

from __future__ import annotations

import smtplib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import dns.resolver
import pytest

from appliance.reports.extract import reports_in_message
from appliance.reports.model import DmarcReport
from harness.e2e import queue_empty, wait_until
from harness.engine import EngineProcess
from peers.dns import KnotDns, zone_text
from peers.mail_world import ZONE_RECORDS, MailWorld, mail_world, maildir_messages

pytestmark = pytest.mark.timeout(240)
RCPT = "carol@inbox.test"
REPORTS_TO, UNVERIFIED_TO = "alice@peer.test", "bob@peer.test"
SENDER_RECORDS = [
    'sender TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    f'_dmarc.sender TXT "v=DMARC1; p=reject; rua=mailto:{REPORTS_TO}!10m"',
    'sender.test._report._dmarc.peer TXT "v=DMARC1"',
    'unverified TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    f'_dmarc.unverified TXT "v=DMARC1; p=none; rua=mailto:{UNVERIFIED_TO}"',
    'evil TXT "v=spf1 -all"',
    # its report address is in a zone Knot does not serve: the 7.1 lookup is REFUSED
    'unanswered TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    '_dmarc.unanswered TXT "v=DMARC1; p=none; rua=mailto:d@elsewhere.example"',
]


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    with mail_world("reports-send") as started:
        yield started


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    server = KnotDns(tmp_path_factory.mktemp("reports-knot"), {})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def engine(world: MailWorld, knot: KnotDns,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    settings = world.engine_settings(
        outbound__resolver=knot.resolver_spec, checks__authentication=True,
        checks__dns_timeout=2, reports__send_aggregate=True, queue__max_retry=1)
    proc = EngineProcess(tmp_path_factory.mktemp("reports-send") / "data", **settings)
    proc.start()
    try:
        cli(proc, "domain", "add", "inbox.test")          # with DKIM keys, as an admin does
        proc.add_account(RCPT)
        knot.zones = {"test": zone_text("test", ZONE_RECORDS + SENDER_RECORDS),
                      "inbox.test": zone_text("inbox.test", cli(
                          proc, "dns", "records", "inbox.test").splitlines())}
        knot.start()
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def cli(engine: EngineProcess, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


def message(author: str, subject: str) -> bytes:
    return (f"From: <{author}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@{author.split('@')[1]}>\r\n\r\nHello.\r\n").encode()


def evaluations(engine: EngineProcess, *domains: str) -> list[tuple[str, str, str, int]]:
    """(policy domain, disposition, source IP, reported) of the rows for `domains`."""
    conn = sqlite3.connect(engine.data_dir / "mailstead.db")
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT policy_domain, disposition, source_ip, reported FROM dmarc_evaluations "
            "ORDER BY id") if r[0] in domains]
    finally:
        conn.close()


def knot_txt(knot: KnotDns) -> object:
    """dkimpy's `dnsfunc`, asking our Knot."""
    resolver = knot.resolver()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


def test_an_evaluated_message_is_reported_to_the_verified_rua(
        world: MailWorld, knot: KnotDns, engine: EngineProcess) -> None:
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=60) as client:
        client.ehlo("client.sender.test")
        client.sendmail("alice@sender.test", [RCPT], message("alice@sender.test", "ok"))
        with pytest.raises(smtplib.SMTPDataError) as refused:     # forged: p=reject
            client.sendmail("ceo@evil.test", [RCPT], message("ceo@sender.test", "forged"))
        assert refused.value.smtp_code == 550
        client.sendmail("news@unverified.test", [RCPT],
                        message("news@unverified.test", "news"))
    domains = ("sender.test", "unverified.test")
    wait_until(lambda: len(evaluations(engine, *domains)) == 3, 10, "three evaluations")
    assert evaluations(engine, *domains) == [("sender.test", "none", "127.0.0.1", 0),
                                             ("sender.test", "reject", "127.0.0.1", 0),
                                             ("unverified.test", "none", "127.0.0.1", 0)]
    day = time.strftime("%Y-%m-%d", time.gmtime())

    dry = cli(engine, "reports", "send-aggregate", "--day", day, "--dry-run")
    assert f"would queue to {REPORTS_TO}" in dry
    assert (f"not sent to {UNVERIFIED_TO}: no external destination record "
            "(RFC 7489 7.1)") in dry
    assert maildir_messages(world.peer, REPORTS_TO) == []

    sent = cli(engine, "reports", "send-aggregate", "--day", day)
    assert f"sender.test {day}: messages=2" in sent
    assert f"queued to {REPORTS_TO} as " in sent
    assert f"not sent to {UNVERIFIED_TO}" in sent
    wait_until(lambda: world.peer.count_delivered(REPORTS_TO) == 1, 30, "the report")
    wait_until(lambda: queue_empty(engine), 15, "an empty queue")
    assert maildir_messages(world.peer, UNVERIFIED_TO) == []

    raw = maildir_messages(world.peer, REPORTS_TO)[0]
    (report,) = reports_in_message(raw).reports
    assert isinstance(report, DmarcReport)
    assert (report.domain, report.org_name, report.email) == (
        "sender.test", "mx.mailstead.test", "postmaster@inbox.test")
    assert (report.policy.p, report.messages, report.failed) == ("reject", 2, 1)
    assert sorted((r.source_ip, r.count, r.disposition, r.dkim, r.spf)
                  for r in report.records) == [("127.0.0.1", 1, "none", "fail", "pass"),
                                               ("127.0.0.1", 1, "reject", "fail", "fail")]
    assert b"\nDKIM-Signature:" in b"\n" + raw.replace(b"\r\n", b"\n")
    assert dkim.verify(raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"),
                       dnsfunc=knot_txt(knot))

    again = cli(engine, "reports", "send-aggregate", "--day", day)
    assert "sender.test" not in again                  # marked reported: not sent twice
    assert [row[3] for row in evaluations(engine, *domains)] == [1, 1, 1]


def test_a_failed_destination_lookup_keeps_the_rows_for_the_next_run(
        engine: EngineProcess) -> None:
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=60) as client:
        client.ehlo("client.unanswered.test")
        client.sendmail("news@unanswered.test", [RCPT],
                        message("news@unanswered.test", "unanswered"))
    wait_until(lambda: len(evaluations(engine, "unanswered.test")) == 1, 10, "the row")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    for _ in range(2):
        out = cli(engine, "reports", "send-aggregate", "--day", day)
        assert f"unanswered.test {day}: messages=1" in out
        assert "not sent to d@elsewhere.example: temperror" in out
    assert evaluations(engine, "unanswered.test") == [
        ("unanswered.test", "none", "127.0.0.1", 0)]     # still waiting to be reported
