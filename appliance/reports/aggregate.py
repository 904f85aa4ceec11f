"""Our own DMARC aggregate reports (RFC 7489 7.2): records summed, the XML, the mail.

Pure building blocks for the reports we send to the domains whose mail we receive: the
authentication check records each evaluation (evaluations.py), and sender.py builds the
day's reports from those rows with these functions and queues them (`reports.send_aggregate`).
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET  # building our own XML; nothing untrusted is parsed here
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from appliance.reports.model import DmarcRecord, DmarcReport


def summed(records: Iterable[DmarcRecord]) -> tuple[DmarcRecord, ...]:
    """Equal evaluations (all but the count) merged into one record with the counts added,
    in the order first seen (RFC 7489 7.2.1.1: one record per distinct evaluation)."""
    counts: dict[DmarcRecord, int] = {}
    for record in records:
        key = replace(record, count=0)
        counts[key] = counts.get(key, 0) + record.count
    return tuple(replace(key, count=count) for key, count in counts.items())


def to_xml(report: DmarcReport) -> bytes:
    """The report as RFC 7489 appendix C XML, UTF-8 with a declaration."""
    root = ET.Element("feedback")
    _add(root, "version", "1.0")
    meta = ET.SubElement(root, "report_metadata")
    _add(meta, "org_name", report.org_name)
    _add(meta, "email", report.email)
    _add(meta, "extra_contact_info", report.extra_contact)
    _add(meta, "report_id", report.report_id)
    dates = ET.SubElement(meta, "date_range")
    _add(dates, "begin", str(report.begin))
    _add(dates, "end", str(report.end))
    for error in report.errors:
        _add(meta, "error", error)
    policy = ET.SubElement(root, "policy_published")
    for tag in ("domain", "adkim", "aspf", "p", "sp"):
        _add(policy, tag, getattr(report.policy, tag))
    _add(policy, "pct", "" if report.policy.pct is None else str(report.policy.pct))
    _add(policy, "fo", report.policy.fo)
    for record in report.records:
        _record(ET.SubElement(root, "record"), record)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _add(parent: ET.Element, tag: str, text: str) -> None:
    """A child element with `text`; optional elements with no value are left out."""
    if text or tag in ("org_name", "email", "report_id", "domain", "p"):
        ET.SubElement(parent, tag).text = text


def _record(element: ET.Element, record: DmarcRecord) -> None:
    row = ET.SubElement(element, "row")
    _add(row, "source_ip", record.source_ip)
    _add(row, "count", str(record.count))
    evaluated = ET.SubElement(row, "policy_evaluated")
    for tag in ("disposition", "dkim", "spf"):
        ET.SubElement(evaluated, tag).text = getattr(record, tag)
    for kind, comment in record.reasons:
        reason = ET.SubElement(evaluated, "reason")
        ET.SubElement(reason, "type").text = kind
        _add(reason, "comment", comment)
    ids = ET.SubElement(element, "identifiers")
    _add(ids, "envelope_to", record.envelope_to)
    _add(ids, "envelope_from", record.envelope_from)
    ET.SubElement(ids, "header_from").text = record.header_from
    auth = ET.SubElement(element, "auth_results")
    for dkim in record.dkim_results:
        entry = ET.SubElement(auth, "dkim")
        _add(entry, "domain", dkim.domain)
        _add(entry, "selector", dkim.selector)
        ET.SubElement(entry, "result").text = dkim.result
    for spf in record.spf_results:
        entry = ET.SubElement(auth, "spf")
        _add(entry, "domain", spf.domain)
        _add(entry, "scope", spf.scope)
        ET.SubElement(entry, "result").text = spf.result


def filename(receiver: str, report: DmarcReport) -> str:
    """RFC 7489 7.2.1.1: receiver "!" policy-domain "!" begin "!" end ".xml.gz"."""
    return f"{receiver}!{report.domain}!{report.begin}!{report.end}.xml.gz"


def report_mail(report: DmarcReport, receiver: str, sender: str, recipients: list[str],
                now: datetime | None = None) -> bytes:
    """The report mail (RFC 7489 7.2.1.1): the subject line the RFC gives, a short text
    part, and the gzipped XML as application/gzip; CRLF line ends."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = (f"Report Domain: {report.domain} Submitter: {receiver} "
                          f"Report-ID: <{report.report_id}>")
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=receiver)
    message.set_content(f"This is a DMARC aggregate report from {receiver} for "
                        f"{report.domain}.\n")
    message.add_attachment(gzip.compress(to_xml(report), mtime=report.end),
                           maintype="application", subtype="gzip",
                           filename=filename(receiver, report))
    return message.as_bytes(policy=SMTP)
