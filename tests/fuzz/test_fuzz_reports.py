"""Fuzz the report parsers: any bytes, mutated real samples, JSON with any values and XML
with any field text give a report or a ReportError, never another exception; whatever is
accepted holds only checked values."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from data.reports.samples import (
    google_dmarc_mail,
    gzipped,
    microsoft_dmarc_mail,
    sample,
    tlsrpt_mail,
    zipped,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.reports.aggregate import to_xml
from appliance.reports.dmarc import parse_dmarc
from appliance.reports.extract import parse_report, reports_in_message
from appliance.reports.model import (
    DkimAuth,
    DmarcRecord,
    DmarcReport,
    Limits,
    PolicyPublished,
    Report,
    ReportError,
    SpfAuth,
    TlsReport,
)
from appliance.reports.store import ReportStore
from appliance.reports.tlsrpt import parse_tlsrpt
from appliance.reports.unpack import decompress
from appliance.storage.db import connect, migrate

SMALL = Limits(max_uncompressed=256 * 1024)
GOOGLE = sample("google_dmarc.xml")
RFC8460 = sample("rfc8460_tlsrpt.json")
SEEDS = [GOOGLE, sample("microsoft_dmarc.xml"), RFC8460, gzipped(GOOGLE),
         zipped("r.xml", GOOGLE), gzipped(RFC8460)]
MAILS = [google_dmarc_mail(), microsoft_dmarc_mail(), tlsrpt_mail()]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


STORE_DB = connect(Path(":memory:"))
migrate(STORE_DB)
STORE = ReportStore(STORE_DB)


def check(report: Report) -> None:
    """What any accepted report guarantees, and that it can be stored and read back."""
    row, _new = STORE.save(report, "fuzz", 0)
    stored = STORE.get(row)
    assert stored is not None
    assert stored["kind"] == report.kind
    assert report.org_name
    assert report.report_id
    assert 0 <= report.begin <= report.end
    if isinstance(report, DmarcReport):
        assert report.domain
        for record in report.records:
            ipaddress.ip_address(record.source_ip)
            assert record.count >= 0
    else:
        assert isinstance(report, TlsReport)
        assert report.policies
        assert all(p.successful >= 0 and p.failed >= 0 for p in report.policies)


def parse_or_error(data: bytes) -> None:
    try:
        report = parse_report(data, SMALL)
    except ReportError:
        return
    check(report)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with one slice replaced by random bytes (or cut short)."""
    seed = draw(st.sampled_from(seeds))
    start = draw(st.integers(0, len(seed)))
    end = draw(st.integers(start, min(len(seed), start + 64)))
    return seed[:start] + draw(st.binary(max_size=64)) + seed[end:]


@FUZZ
@given(st.binary(max_size=2000))
@example(b"\x1f\x8b")
@example(b"PK\x03\x04")
@example(b"<feedback/>")
@example(b"{}")
def test_any_bytes(data: bytes) -> None:
    parse_or_error(data)


@FUZZ
@given(mutated(SEEDS))
def test_mutated_samples(data: bytes) -> None:
    parse_or_error(data)


@FUZZ
@given(mutated(MAILS))
def test_mutated_mails_give_found(data: bytes) -> None:
    found = reports_in_message(data, SMALL)
    for report in found.reports:
        check(report)
    assert all(isinstance(e, str) for e in found.errors)


@FUZZ
@given(mutated([gzipped(GOOGLE), zipped("r.xml", GOOGLE)]))
def test_decompress_gives_bytes_or_report_error(data: bytes) -> None:
    try:
        out = decompress(data, SMALL)
    except ReportError:
        return
    assert len(out) <= SMALL.max_uncompressed


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
TLS_PATHS = [("organization-name",), ("report-id",), ("contact-info",), ("date-range",),
             ("date-range", "start-datetime"), ("policies",), ("policies", 0, "policy"),
             ("policies", 0, "summary", "total-failure-session-count"),
             ("policies", 0, "policy", "mx-host"), ("policies", 0, "failure-details"),
             ("policies", 0, "failure-details", 0, "sending-mta-ip"),
             ("policies", 0, "failure-details", 0, "failed-session-count")]


@FUZZ
@given(st.sampled_from(TLS_PATHS), JSON_VALUES)
def test_tlsrpt_with_any_value_anywhere(path: tuple[str | int, ...], value: Any) -> None:
    document = json.loads(RFC8460)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    if path == ("organization-name",) and value is None:
        parent[path[-1]] = "\ud800"     # valid JSON, not storable UTF-8: must be refused
    try:
        report = parse_tlsrpt(json.dumps(document).encode(), SMALL)
    except ReportError:
        return
    check(report)


DMARC_FIELDS = ["org_name", "report_id", "begin", "end", "domain", "p", "pct", "source_ip",
                "count", "disposition", "header_from", "selector", "result"]


@FUZZ
@given(st.sampled_from(DMARC_FIELDS), st.text(max_size=40))
@example("count", "٣")          # a non-ASCII digit: not a count
@example("source_ip", "::ffff:1.2.3.4")
@example("org_name", "\ud800")
def test_dmarc_with_any_text_in_a_field(field: str, text: str) -> None:
    old = GOOGLE.split(f"<{field}>".encode(), 1)
    value = old[1].split(f"</{field}>".encode(), 1)
    document = (old[0] + f"<{field}>".encode() + escape(text).encode("utf-8", "replace")
                + f"</{field}>".encode() + value[1])
    try:
        report = parse_dmarc(document, SMALL)
    except ReportError:
        return
    check(report)


HEADER_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                      max_size=40)


@FUZZ
@given(st.sampled_from(["application/zip", "application/gzip", "text/xml",
                        "application/tlsrpt+gzip", "application/octet-stream"]) | HEADER_TEXT,
       HEADER_TEXT, st.sampled_from(["base64", "quoted-printable", "x-uuencode", "8bit"])
       | HEADER_TEXT, st.binary(max_size=300))
@example("application/zip", "r.zip", "base64", b"UEsDBA==")
def test_any_part_headers_and_body(content_type: str, filename: str, encoding: str,
                                   body: bytes) -> None:
    message = (f"Content-Type: {content_type}; name*=utf-8''{filename}\r\n"
               f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
               f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + body
    found = reports_in_message(message, SMALL)
    for report in found.reports:
        check(report)


# -- our own reports: whatever we build, our parser reads back the same --------------------------

WORD = st.text(st.characters(whitelist_categories=["L", "N", "P", "S"],
                             blacklist_characters="\x7f"), min_size=1, max_size=20)
PHRASE = st.lists(WORD, min_size=1, max_size=3).map(" ".join)
LOWER = WORD.map(str.lower).filter(lambda w: w == w.lower())
DOMAINS = st.from_regex(r"[a-z0-9]{1,10}(-[a-z0-9]{1,5})?(\.[a-z0-9]{1,10}){0,2}",
                        fullmatch=True)
IPS = st.ip_addresses().map(str)


@st.composite
def dmarc_reports(draw: st.DrawFn) -> DmarcReport:
    def record() -> DmarcRecord:
        return DmarcRecord(
            source_ip=draw(IPS), count=draw(st.integers(0, 2**40)),
            disposition=draw(LOWER), dkim=draw(LOWER), spf=draw(LOWER),
            header_from=draw(DOMAINS), envelope_from=draw(st.just("") | DOMAINS),
            reasons=tuple(draw(st.lists(st.tuples(LOWER, st.just("") | PHRASE),
                                        max_size=2))),
            dkim_results=tuple(DkimAuth(draw(DOMAINS), draw(WORD), draw(LOWER))
                               for _ in range(draw(st.integers(0, 2)))),
            spf_results=tuple(SpfAuth(draw(DOMAINS), draw(st.just("") | LOWER), draw(LOWER))
                              for _ in range(draw(st.integers(0, 2)))))

    begin = draw(st.integers(0, 2**40))
    return DmarcReport(
        org_name=draw(PHRASE), email=draw(st.just("") | WORD), report_id=draw(WORD),
        begin=begin, end=draw(st.integers(begin, 2**40)),
        policy=PolicyPublished(draw(DOMAINS), draw(LOWER), draw(st.just("") | LOWER),
                               pct=draw(st.none() | st.integers(0, 100)),
                               fo=draw(st.just("") | WORD)),
        records=tuple(record() for _ in range(draw(st.integers(0, 3)))),
        extra_contact=draw(st.just("") | PHRASE))


@FUZZ
@given(dmarc_reports())
def test_our_aggregate_xml_reads_back_the_same(report: DmarcReport) -> None:
    assert parse_dmarc(to_xml(report), SMALL) == report
