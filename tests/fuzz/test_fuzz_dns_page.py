"""Fuzz the console's DNS page and client set-up parsers: Autodiscover request bodies give an
address or BadRequestXmlError only; TXT comparison, tag parsing and SPF verdicts never raise
and give a known state; the port-25 target setting parses or raises ValueError; zone files
built from any host name and key parse back with dnspython."""

from __future__ import annotations

import dns.zone
from hypothesis import example, given, settings
from hypothesis import strategies as st

from webui.client_config import REQUEST_NS, BadRequestXmlError, autodiscover_address
from webui.dns_check import STATES, compare_txt, spf_verdict, tag
from webui.dns_records import Record, ServerFacts, parse_target, records_for, zone_file

FACTS = ServerFacts("mail.example.test", ipv4="192.0.2.25", ipv6="2001:db8::25")
XML_PARTS = st.sampled_from([
    "<Autodiscover>", "</Autodiscover>", f'<Autodiscover xmlns="{REQUEST_NS}">', "<Request>",
    "</Request>", "<EMailAddress>", "</EMailAddress>", "a@example.test", "&amp;", "&lol;",
    '<!DOCTYPE a [<!ENTITY lol "x">]>', '<?xml version="1.0"?>', "<![CDATA[x]]>", "\x00",
    "\u00fc", "<!-- c -->", " ", ">", "<", '"', "=", "<EMailAddress/>"])
TXT_PARTS = st.sampled_from([
    "v=spf1", "v=DMARC1", "v=STSv1", "v=TLSRPTv1", "v=DKIM1", ";", " ", "mx", "-all", "+all",
    "~all", "ip4:192.0.2.0/24", "ip4:999.1.1.1/99", "ip6:2001:db8::/32", "ip4:", "a:",
    "p=", "p=quarantine", "id=", "rua=", "=", "mailto:x@y", "k=rsa", "\u00fc", "include:x"])
TXTS = st.lists(TXT_PARTS, max_size=12).map("".join) | st.text(max_size=80)
KINDS = st.sampled_from(["spf", "dmarc", "mta-sts", "tls-rpt", "dkim:s"])


@given(st.lists(XML_PARTS, max_size=20).map("".join).map(str.encode) | st.binary(max_size=300))
@example(b"<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>")
def test_autodiscover_body_gives_address_or_bad_request(body: bytes) -> None:
    try:
        address = autodiscover_address(body)
    except BadRequestXmlError:
        return
    assert address
    assert address == address.strip()


@given(KINDS, TXTS, st.lists(TXTS, max_size=4))
def test_txt_comparison_never_raises(kind: str, expected: str, found: list[str]) -> None:
    state, note = compare_txt(Record(kind, "", "example.test", "TXT", expected), found, FACTS)
    assert state in STATES
    assert isinstance(note, str)
    verdict, _ = spf_verdict(expected, FACTS)
    assert verdict in ("ok", "wrong")
    value = tag(expected, "p")
    assert value is None or not any(c.isspace() for c in value)


@given(st.text(max_size=40))
@example("[::1]:25")
@example("host:65536")
def test_target_parses_or_value_error(text: str) -> None:
    try:
        found = parse_target(text)
    except ValueError:
        return
    if found is not None:
        host, port = found
        assert host
        assert 0 < port < 65536


LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)


@settings(max_examples=50)
@given(st.lists(LABEL, min_size=1, max_size=3), st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
    max_size=600), st.sampled_from(["", "192.0.2.1"]))
def test_zone_file_parses_for_any_host_and_key(labels: list[str], key: str, ipv4: str) -> None:
    facts = ServerFacts(".".join([*labels, "example"]), ipv4=ipv4)
    records = records_for("example.test", facts,
                          [("s._domainkey.example.test", f"v=DKIM1; k=rsa; p={key}")])
    zone = dns.zone.from_text(zone_file("example.test", facts, records),
                              origin="example.test", check_origin=False, relativize=False)
    rdataset = zone.find_rdataset("s._domainkey.example.test.", "TXT")
    assert {b"".join(r.strings).decode() for r in rdataset} == {f"v=DKIM1; k=rsa; p={key}"}
