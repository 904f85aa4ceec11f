"""The records the DNS page asks for (webui/dns_records.py): the table and the zone file."""

from __future__ import annotations

from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from appliance.dkim import keys
from webui.dns_check import dkim_records
from webui.dns_records import (
    Record,
    ServerFacts,
    mta_sts_id,
    mta_sts_policy,
    parse_target,
    records_for,
    zone_file,
)

FACTS = ServerFacts("mail.example.org", ipv4="203.0.113.7", ipv6="2001:db8::7")


def by_key(records: list[Record]) -> dict[str, Record]:
    return {r.key: r for r in records}


def test_table_has_every_record_a_domain_needs() -> None:
    table = by_key(records_for("example.org", FACTS, [("s1._domainkey.example.org",
                                                       "v=DKIM1; k=rsa; p=QUJD")]))
    assert table["mx"].value == "10 mail.example.org."
    assert (table["host-a"].name, table["host-a"].value) == ("mail.example.org", "203.0.113.7")
    assert table["host-aaaa"].value == "2001:db8::7"
    assert table["spf"].value == "v=spf1 mx -all"
    assert table["dkim:s1"].name == "s1._domainkey.example.org"
    assert table["dmarc"].name == "_dmarc.example.org"
    assert "p=quarantine" in table["dmarc"].value
    assert table["mta-sts"].value == f"v=STSv1; id={mta_sts_id(FACTS)}"
    assert (table["mta-sts-host"].rtype, table["mta-sts-host"].value) == ("A", "203.0.113.7")
    assert table["mta-sts-host-aaaa"].value == "2001:db8::7"
    assert table["tls-rpt"].name == "_smtp._tls.example.org"
    assert table["tls-rpt"].value == "v=TLSRPTv1; rua=mailto:postmaster@example.org"
    assert (table["autoconfig"].rtype, table["autoconfig"].value) == ("CNAME",
                                                                     "mail.example.org.")
    assert table["autodiscover"].rtype == "CNAME"


def test_srv_records_follow_rfc_6186_and_8314_priorities() -> None:
    facts = ServerFacts("mx.example.org", ports=(("submission", 5870), ("imaps", 9930)))
    table = by_key(records_for("example.org", facts))
    assert table["srv:_submissions._tcp"].value == "0 1 465 mx.example.org."
    assert table["srv:_submission._tcp"].value == "10 1 5870 mx.example.org."
    assert table["srv:_imaps._tcp"].value == "0 1 9930 mx.example.org."
    assert table["srv:_imap._tcp"].value == "10 1 143 mx.example.org."
    assert table["srv:_pop3s._tcp"].value.startswith("20 ")
    assert table["srv:_pop3._tcp"].value.startswith("30 ")


def test_without_public_address_the_host_record_is_a_placeholder() -> None:
    facts = ServerFacts("mail.example.org")
    table = by_key(records_for("example.org", facts))
    assert table["host-a"].value == ""
    assert "dns.public_ipv4" in table["host-a"].note
    assert "host-aaaa" not in table
    assert table["mta-sts-host"].rtype == "CNAME"
    text = zone_file("example.org", facts, list(table.values()))
    assert "; mail.example.org. 3600 IN A <this server's public address>" in text


def test_mta_sts_id_changes_with_the_policy() -> None:
    testing = ServerFacts("mail.example.org", mta_sts_mode="testing")
    enforce = ServerFacts("mail.example.org", mta_sts_mode="enforce")
    assert mta_sts_id(testing) != mta_sts_id(enforce)
    assert mta_sts_id(testing) == mta_sts_id(ServerFacts("mail.example.org"))
    assert mta_sts_id(testing).isalnum()
    assert len(mta_sts_id(testing)) <= 32
    assert mta_sts_policy(enforce) == ("version: STSv1\r\nmode: enforce\r\n"
                                       "mx: mail.example.org\r\nmax_age: 604800\r\n")


def test_zone_file_parses_back_with_dnspython(tmp_path: Path) -> None:
    keys.ensure_keys(tmp_path, "example.org")
    records = records_for("example.org", FACTS, dkim_records(tmp_path, "example.org"))
    text = zone_file("example.org", FACTS, records)
    zone = dns.zone.from_text(text, origin="example.org", check_origin=False,
                              relativize=False)
    in_zone = [r for r in records if r.in_zone("example.org")]
    for record in in_zone:
        rdataset = zone.find_rdataset(record.name + ".", record.rtype)
        if record.rtype == "TXT":
            values = {b"".join(r.strings).decode() for r in rdataset}
        else:
            values = {r.to_text() for r in rdataset}
        assert record.value in values, record
    # The RSA key's record is longer than one 255-octet string: split, joined back above.
    dkim_rsa = [r for r in records if r.key.startswith("dkim:") and "k=rsa" in r.value]
    assert len(dkim_rsa) == 1
    assert len(dkim_rsa[0].value) > 255
    # The host name is inside example.org, so its A record is a real line.
    assert zone.find_rdataset("mail.example.org.", dns.rdatatype.A)


def test_records_outside_the_zone_are_comments() -> None:
    facts = ServerFacts("mx.provider.net", ipv4="203.0.113.7")
    records = records_for("example.org", facts)
    text = zone_file("example.org", facts, records)
    assert "; in the zone of mx.provider.net: mx.provider.net. 3600 IN A 203.0.113.7" in text
    assert "; no DKIM keys for example.org" in text
    zone = dns.zone.from_text(text, origin="example.org", check_origin=False,
                              relativize=False)
    assert zone.origin is not None
    assert all(name.is_subdomain(zone.origin) for name in zone.nodes)


def test_port25_target_parsing() -> None:
    assert parse_target("smtp.example.net:25") == ("smtp.example.net", 25)
    assert parse_target("[::1]:2525") == ("::1", 2525)
    assert parse_target("") is None
    for bad in ("host", "host:0", "host:70000", ":25", "a b:25"):
        with pytest.raises(ValueError):
            parse_target(bad)
