"""Our own aggregate reports (reports/aggregate.py): summing, RFC 7489 XML and the mail,
checked by reading them back with our parser and the email package."""

from __future__ import annotations

import email
import gzip
from dataclasses import replace
from datetime import UTC, datetime

from data.reports.samples import sample

from appliance.reports.aggregate import filename, report_mail, summed, to_xml
from appliance.reports.dmarc import parse_dmarc
from appliance.reports.extract import reports_in_message


def test_samples_round_trip_through_our_xml() -> None:
    for name in ("google_dmarc.xml", "microsoft_dmarc.xml", "dmarcbis_dmarc.xml"):
        report = parse_dmarc(sample(name))
        assert parse_dmarc(to_xml(report)) == report, name


def test_equal_evaluations_are_summed_in_order() -> None:
    first, second = parse_dmarc(sample("google_dmarc.xml")).records
    merged = summed([first, second, replace(first, count=5), second])
    assert [(r.source_ip, r.count) for r in merged] == [("192.0.2.25", 17),
                                                        ("203.0.113.99", 6)]


def test_report_mail_follows_rfc7489_and_reads_back() -> None:
    report = parse_dmarc(sample("microsoft_dmarc.xml"))
    raw = report_mail(report, "mx.mailstead.test", "postmaster@mailstead.test",
                      ["dmarc@example.test"], datetime(2023, 11, 16, tzinfo=UTC))
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    message = email.message_from_bytes(raw)
    subject = str(message["Subject"]).replace("\r\n", "").replace("\n", "")   # unfolded
    assert subject == ("Report Domain: example.test Submitter: mx.mailstead.test "
                                  "Report-ID: <3f6a3b9e2c4d4e0f9a8b7c6d5e4f3a2b>")
    (attachment,) = [p for p in message.walk() if p.get_content_type() == "application/gzip"]
    assert attachment.get_filename() == filename("mx.mailstead.test", report)
    assert attachment.get_filename() == (
        "mx.mailstead.test!example.test!1700006400!1700092800.xml.gz")
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert gzip.decompress(payload).startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert reports_in_message(raw).reports == (report,)
