"""DMARC aggregate and TLS-RPT parsing, bounded decompression and attachment extraction,
on samples shaped like real senders' reports (tests/data/reports/README.md) and on attacks:
zip bombs, billion laughs, external entities, deep nesting."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import pytest
from data.reports.samples import (
    google_dmarc_mail,
    gzipped,
    microsoft_dmarc_mail,
    octet_stream_mail,
    sample,
    tlsrpt_mail,
    zipped,
)

from appliance.reports.dmarc import parse_dmarc
from appliance.reports.extract import parse_report, reports_in_message
from appliance.reports.model import DmarcReport, Limits, ReportError, TlsReport
from appliance.reports.tlsrpt import parse_tlsrpt
from appliance.reports.unpack import decompress, gunzip, unzip_one

MIB = 1024 * 1024


# -- DMARC XML (RFC 7489 appendix C) ----------------------------------------------------------

def test_google_report_metadata_policy_and_records() -> None:
    report = parse_dmarc(sample("google_dmarc.xml"))
    assert (report.org_name, report.email, report.report_id) == (
        "google.com", "noreply-dmarc-support@google.com", "13729587403175624651")
    assert (report.begin, report.end) == (1700006400, 1700092799)
    assert report.extra_contact == "https://support.google.com/a/answer/2466580"
    assert report.policy.domain == "example.test"
    assert (report.policy.p, report.policy.sp, report.policy.pct) == (
        "quarantine", "quarantine", 100)
    assert [(r.source_ip, r.count, r.disposition, r.dkim, r.spf) for r in report.records] == [
        ("192.0.2.25", 12, "none", "pass", "pass"),
        ("203.0.113.99", 3, "quarantine", "fail", "fail")]
    first = report.records[0]
    assert [d.selector for d in first.dkim_results] == ["ms20231101r", "ms20231101e"]
    assert first.spf_results[0].result == "pass"
    assert (report.messages, report.failed) == (15, 3)


def test_microsoft_report_identifiers_reasons_and_ipv6() -> None:
    report = parse_dmarc(sample("microsoft_dmarc.xml"))
    assert report.org_name == "Enterprise Outlook"
    assert report.policy.fo == "0"
    first, second = report.records
    assert first.source_ip == "2001:db8::25"        # canonical form of 2001:DB8:0:0::25
    assert (first.envelope_to, first.envelope_from) == ("contoso.example",
                                                        "bounce.example.test")
    assert first.passed                               # aligned DKIM passed, SPF failed
    assert second.reasons == (("local_policy", "arc=pass as.1.list.example=pass"),)
    assert second.spf_results[0].scope == "mfrom"
    assert not second.passed
    assert report.failed == 2


def test_dmarcbis_namespace_is_read_like_rfc7489() -> None:
    report = parse_dmarc(sample("dmarcbis_dmarc.xml"))
    assert report.org_name == "Sample Reporter"
    assert report.policy.adkim == "s"
    assert report.records[0].count == 123


def _replace(old: str, new: str) -> bytes:
    return sample("google_dmarc.xml").replace(old.encode(), new.encode(), 1)


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("<org_name>google.com</org_name>", "", "org_name is missing"),
    ("<report_id>13729587403175624651</report_id>", "<report_id> </report_id>",
     "report_id is empty"),
    ("<begin>1700006400</begin>", "<begin>yesterday</begin>", "date_range/begin"),
    ("<begin>1700006400</begin>", "<begin>1800000000</begin>", "ends before it begins"),
    ("<source_ip>192.0.2.25</source_ip>", "<source_ip>192.0.2.256</source_ip>",
     "not an IP address"),
    ("<count>12</count>", "<count>-12</count>", "count is not a count"),
    ("<count>12</count>", "<count>99999999999999999999</count>", "count is not a count"),
    ("<domain>example.test</domain>\n    <adkim>", "<domain>a b</domain>\n    <adkim>",
     "not a domain"),
    ("<disposition>none</disposition>", "", "disposition is missing"),
    ("<feedback>", "<feedbook>", "malformed XML"),
    ("google.com</org_name>", "google\x01.com</org_name>", "malformed XML"),
])
def test_malformed_dmarc_gives_report_error(old: str, new: str, reason: str) -> None:
    with pytest.raises(ReportError, match=reason):
        parse_dmarc(_replace(old, new))


def test_other_root_element_refused() -> None:
    with pytest.raises(ReportError, match="not feedback"):
        parse_dmarc(b"<html><body>hello</body></html>")


def test_overlong_field_refused() -> None:
    with pytest.raises(ReportError, match="longer than"):
        parse_dmarc(_replace("google.com</org_name>", "g" * 5000 + "</org_name>"))


# -- hostile XML ------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<feedback><report_metadata><org_name>&lol5;</org_name></report_metadata></feedback>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&secret;</org_name></report_metadata></feedback>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/dmarc.dtd">
<feedback/>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
                         ids=["billion_laughs", "external_entity", "external_dtd"])
def test_attack_dtd_and_entities_refused(document: bytes) -> None:
    with pytest.raises(ReportError, match="forbidden XML construct"):
        parse_dmarc(document)


def test_attack_deep_xml_refused() -> None:
    deep = b"<feedback>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</feedback>"
    with pytest.raises(ReportError, match="nested deeper"):
        parse_dmarc(deep)


def test_attack_many_records_refused_at_the_limit() -> None:
    record = sample("google_dmarc.xml").split(b"<record>")[1].split(b"</record>")[0]
    many = sample("google_dmarc.xml").replace(
        b"</feedback>", (b"<record>" + record + b"</record>") * 20 + b"</feedback>")
    with pytest.raises(ReportError, match="more than 10 records"):
        parse_dmarc(many, Limits(max_rows=10))
    assert len(parse_dmarc(many).records) == 22


# -- TLS-RPT JSON (RFC 8460 4.4) --------------------------------------------------------------

def test_rfc8460_example() -> None:
    report = parse_tlsrpt(sample("rfc8460_tlsrpt.json"))
    assert (report.org_name, report.contact, report.report_id) == (
        "Company-X", "sts-reporting@company-x.example", "5065427c-23d3-47ca-b6e0-946ea0e8c4be")
    assert (report.begin, report.end) == (1459468800, 1459555199)
    (policy,) = report.policies
    assert (policy.policy_type, policy.policy_domain) == ("sts", "company-y.example")
    assert policy.mx_hosts == ("*.mail.company-y.example",)    # a string in the example
    assert policy.policy_strings[1] == "mode: testing"
    assert (policy.successful, policy.failed) == (5326, 303)
    kinds = [(f.result_type, f.failed_sessions) for f in policy.failures]
    assert kinds == [("certificate-expired", 100), ("starttls-not-supported", 200),
                     ("validation-failure", 3)]
    assert policy.failures[0].sending_mta_ip == "2001:db8:abcd:12::1"
    assert policy.failures[2].failure_reason_code == "X509_V_ERR_PROOF_OF_POSSESSION"
    assert report.domain == "company-y.example"
    assert (report.messages, report.failed) == (5629, 303)


def test_google_tlsrpt_mx_host_list() -> None:
    report = parse_tlsrpt(sample("google_tlsrpt.json"))
    assert report.policies[0].mx_hosts == ("mx.mailstead.test",)
    assert report.failed == 2


def _tls(**changes: object) -> bytes:
    document = json.loads(sample("rfc8460_tlsrpt.json"))
    for key, value in changes.items():
        if value is None:
            del document[key.replace("_", "-")]
        else:
            document[key.replace("_", "-")] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"not json", "malformed JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"report-id": 1' + b"0" * 5000 + b"}", "malformed JSON"),
    (_tls(report_id=None), "report-id is missing"),
    (_tls(organization_name=7), "organization-name is not text"),
    (_tls(policies=[]), "policies is empty"),
    (_tls(policies={"a": 1}), "policies is not a JSON array"),
    (_tls(date_range={"start-datetime": "April 1st", "end-datetime": "x"}),
     "not an RFC 3339 date-time"),
    (_tls(policies=[{"policy": {"policy-type": "sts", "policy-domain": "example.test"},
                     "summary": {"total-successful-session-count": True,
                                 "total-failure-session-count": 0}}]),
     "total-successful-session-count is not a count"),
    (_tls(policies=[{"policy": {}, "summary": {}}]), "policy-type is missing"),
])
def test_malformed_tlsrpt_gives_report_error(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError, match=reason):
        parse_tlsrpt(data)


# -- bounded decompression --------------------------------------------------------------------

def test_gzip_and_zip_round_trip() -> None:
    xml = sample("google_dmarc.xml")
    assert decompress(gzipped(xml)) == xml
    assert decompress(zipped("report.xml", xml)) == xml
    assert decompress(xml) == xml
    assert gunzip(gzipped(b"a") + gzipped(b"b"), 10) == b"ab"    # RFC 1952 2.2 members


def test_attack_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (64 * MIB), 9)     # 64 MiB from about 64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(ReportError, match="expands past"):
        decompress(bomb, Limits(max_uncompressed=1 * MIB))


def test_attack_zip_bomb_stops_at_the_cap() -> None:
    bomb = zipped("report.xml", b"<" * (64 * MIB))
    with pytest.raises(ReportError, match="expands past"):
        unzip_one(bomb, Limits(max_uncompressed=1 * MIB))


def test_attack_oversized_uncompressed_report_refused() -> None:
    small = Limits(max_uncompressed=1000)
    xml = sample("google_dmarc.xml")
    assert len(xml) > small.max_uncompressed
    with pytest.raises(ReportError, match="report larger than 1000 bytes"):
        decompress(xml, small)
    with pytest.raises(ReportError, match="XML larger than 1000 bytes"):
        parse_dmarc(xml, small)
    with pytest.raises(ReportError, match="JSON larger than 1000 bytes"):
        parse_tlsrpt(b" " * 1001 + b"{}", small)


def test_attack_zip_with_many_members_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(1000):
            archive.writestr(f"r{n}.xml", b"<feedback/>")
    with pytest.raises(ReportError, match="1000 entries"):
        unzip_one(buffer.getvalue())


def test_zip_with_two_reports_and_encrypted_or_broken_zips_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.xml", b"<feedback/>")
        archive.writestr("b.xml", b"<feedback/>")
    with pytest.raises(ReportError, match="2 files"):
        unzip_one(buffer.getvalue())
    good = zipped("report.xml", sample("google_dmarc.xml"))
    with pytest.raises(ReportError, match="unreadable zip"):
        unzip_one(good[:len(good) // 2])
    encrypted = bytearray(good)
    encrypted[6] |= 0x01          # the local header's "encrypted" flag
    central = encrypted.rfind(b"PK\x01\x02")
    encrypted[central + 8] |= 0x01
    with pytest.raises(ReportError, match="unreadable zip"):
        unzip_one(bytes(encrypted))


def test_truncated_or_damaged_gzip_refused() -> None:
    data = gzipped(sample("google_dmarc.xml"))
    with pytest.raises(ReportError, match="truncated gzip"):
        gunzip(data[:40], MIB)
    with pytest.raises(ReportError, match="damaged gzip"):
        gunzip(data[:10] + b"\xff" * 50, MIB)


def test_compressed_twice_refused() -> None:
    with pytest.raises(ReportError, match="compressed twice"):
        parse_report(gzipped(gzipped(sample("google_dmarc.xml"))))
    with pytest.raises(ReportError, match="neither DMARC"):
        parse_report(b"hello")


# -- mails: the shapes senders use ------------------------------------------------------------

def test_google_zip_mail() -> None:
    found = reports_in_message(google_dmarc_mail())
    assert found.errors == ()
    (report,) = found.reports
    assert isinstance(report, DmarcReport)
    assert report.org_name == "google.com"


def test_microsoft_gzip_mail() -> None:
    found = reports_in_message(microsoft_dmarc_mail())
    assert found.errors == ()
    assert [r.report_id for r in found.reports] == ["3f6a3b9e2c4d4e0f9a8b7c6d5e4f3a2b"]


def test_tlsrpt_multipart_report_mail() -> None:
    found = reports_in_message(tlsrpt_mail())
    (report,) = found.reports
    assert isinstance(report, TlsReport)
    assert report.domain == "example.test"


@pytest.mark.parametrize(("filename", "wrap"), [
    ("report.zip", lambda x: zipped("report.xml", x)),
    ("report.xml.gz", gzipped),
    ("report.xml", lambda x: x),
])
def test_octet_stream_told_by_file_name(filename: str, wrap: object) -> None:
    assert callable(wrap)
    found = reports_in_message(octet_stream_mail(wrap(sample("dmarcbis_dmarc.xml")), filename))
    assert [r.report_id for r in found.reports] == ["3v98abbp8ya9n3va8yr8oa3ya"]


def test_mail_without_report_and_with_a_bad_one() -> None:
    assert reports_in_message(b"Subject: hi\r\n\r\nhello\r\n").reports == ()
    found = reports_in_message(octet_stream_mail(b"PK\x03\x04garbage", "report.zip"))
    assert found.reports == ()
    assert len(found.errors) == 1
    assert "unreadable zip" in found.errors[0]


def test_attack_mail_with_many_parts_reads_only_the_limit() -> None:
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(500))
    message = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"--b--\r\n")
    found = reports_in_message(message, Limits(max_parts=16))
    assert found.reports == ()
    assert found.errors == ("more than 16 MIME parts: the rest not read",)


def test_attack_deeply_nested_mime_gives_an_error() -> None:
    message = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n)
                       for n in range(5000)) + b"\r\nx\r\n"
    found = reports_in_message(message)
    assert found.reports == ()
    assert found.errors == ("MIME structure nested too deeply",)


def test_policy_domains_become_a_labels() -> None:
    report = parse_dmarc(_replace("<domain>example.test</domain>\n    <adkim>",
                                  "<domain>Bücher.Example.</domain>\n    <adkim>"))
    assert report.domain == "xn--bcher-kva.example"
    document = json.loads(sample("rfc8460_tlsrpt.json"))
    document["policies"][0]["policy"]["policy-domain"] = "MÜNCHEN.example"
    assert parse_tlsrpt(json.dumps(document).encode()).domain == "xn--mnchen-3ya.example"


def test_other_encodings_and_byte_order_marks() -> None:
    xml = sample("google_dmarc.xml").decode()
    latin = xml.replace('encoding="UTF-8"', 'encoding="windows-1252"').replace(
        "google.com</org_name>", "gööglé.com</org_name>")
    assert parse_report(latin.encode("cp1252")).org_name == "gööglé.com"
    utf16 = xml.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert parse_report(utf16).org_name == "google.com"
    assert parse_report(b"\xef\xbb\xbf" + xml.encode()).org_name == "google.com"
    tls = sample("rfc8460_tlsrpt.json")
    assert parse_report(b"\xef\xbb\xbf" + tls).org_name == "Company-X"
    assert parse_report(tls.decode().encode("utf-16")).org_name == "Company-X"
