"""A DNS world for the console's DNS page: Knot on loopback serving half of the records of
example.test correctly, reverse zones for the server's addresses, and two blocklists.

Used by tests/console/test_dns*.py and the browser test: `world_values` are the settings
(`outbound.resolver` is the Knot server), `publish_world` (re)starts Knot with the zones
for the records the settings give (`world_zones`), and `EXPECTED` is the state each check
must end in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.settings import Settings, load_settings
from peers.dns import KnotDns, zone_text
from webui.dns_check import domain_records
from webui.dns_records import Record

DOMAIN = "example.test"
HOST = "mail.example.test"
IPV4 = "192.0.2.25"                # TEST-NET-1 (RFC 5737): never routed
IPV6 = "2001:db8::25"              # documentation prefix (RFC 3849)
REVERSE4 = "2.0.192.in-addr.arpa"
REVERSE6 = "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
LISTING_ZONE = "bl.test"           # lists IPV4
CLEAN_ZONE = "clean.test"          # lists nothing
DEAD_ZONE = "dead.test"            # served by nobody: Knot answers REFUSED
WRONG_KEY = ("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")

# The state each check ends in against `world_zones` (keys as in dns_records, with
# the server's checks under their own keys).
EXPECTED: dict[str, str] = {
    "mx": "ok", "host-a": "ok", "spf": "ok", "dmarc": "ok", "autoconfig": "ok",
    "srv:_submissions._tcp": "ok", "srv:_submission._tcp": "ok", "srv:_imaps._tcp": "ok",
    "host-aaaa": "wrong", "mta-sts": "wrong", "srv:_imap._tcp": "wrong",
    "tls-rpt": "missing", "autodiscover": "missing", "mta-sts-host": "missing",
    "mta-sts-host-aaaa": "missing", "srv:_pop3s._tcp": "missing", "srv:_pop3._tcp": "missing",
    f"ptr:{IPV4}": "ok", f"ptr:{IPV6}": "missing",
    f"dnsbl:{LISTING_ZONE}:{IPV4}": "wrong", f"dnsbl:{CLEAN_ZONE}:{IPV4}": "ok",
    f"dnsbl:{DEAD_ZONE}:{IPV4}": "error",
    "port25": "ok",
}


def world_values(resolver: str, port25: str) -> dict[str, Any]:
    """Settings (`section.key`) for the world: our host name and addresses, `resolver`
    (Knot's `resolver_spec`), `port25` (`HOST:PORT` of a local listener), the lists."""
    return {
        "server.hostname": HOST, "dns.public_ipv4": IPV4, "dns.public_ipv6": IPV6,
        "outbound.resolver": resolver, "dns.port25_target": port25,
        "dns.check_timeout": 2, "dns.blocklists": f"{LISTING_ZONE}, {CLEAN_ZONE}, {DEAD_ZONE}",
    }


def world_settings(data_dir: Path, resolver: str, port25: str, **more: Any) -> Settings:
    """Default settings on `data_dir` with `world_values` and `more` (`section.key`)."""
    base = load_settings(None, environ={})
    values = dict(base.values)
    values.update({"paths.data_dir": str(data_dir), **world_values(resolver, port25)})
    values.update(more)
    return dataclasses.replace(base, values=values, base_dir=data_dir.parent)


def publish_world(server: KnotDns, settings: Settings) -> None:
    """(Re)start `server` serving the world for the records `settings` give example.test
    (call it once the domain's DKIM keys exist: the zone holds one right, one wrong)."""
    server.stop()
    server.zones = world_zones(domain_records(settings, DOMAIN))
    server.start()


def _good(record: Record) -> str:
    value = record.value if record.rtype != "TXT" else _quoted(record.value)
    return f"{record.name}. {record.rtype} {value}"


def _quoted(value: str) -> str:
    raw = value.encode()
    return " ".join('"' + raw[i:i + 255].decode() + '"' for i in range(0, len(raw), 255))


def domain_lines(records: Sequence[Record]) -> list[str]:
    """example.test's zone: every record with an "ok" state published as expected, the
    "wrong" ones changed, the "missing" ones left out. DKIM: the first selector (RSA) right,
    the second (Ed25519) with another key."""
    lines: list[str] = []
    dkim = [r for r in records if r.key.startswith("dkim:")]
    for record in records:
        state = EXPECTED.get(record.key)
        if record.key.startswith("dkim:"):
            state = "ok" if record is dkim[0] else "wrong"
        if state == "ok":
            lines.append(_good(record))
        elif state == "wrong":
            lines.append(_wrong(record))
    return lines


def _wrong(record: Record) -> str:
    if record.key.startswith("dkim:"):
        return f'{record.name}. TXT "v=DKIM1; k=ed25519; p={WRONG_KEY}"'
    if record.key == "host-aaaa":
        return f"{record.name}. AAAA 2001:db8::99"
    if record.key == "mta-sts":
        return f'{record.name}. TXT "v=STSv1; id=20200101old"'
    if record.key == "srv:_imap._tcp":
        return f"{record.name}. SRV 10 1 1143 {HOST}."
    raise AssertionError(f"no wrong form for {record.key}")


def world_zones(records: Sequence[Record]) -> dict[str, str]:
    """Every zone Knot serves for the DNS page's world (the domain's from `records`)."""
    return {
        DOMAIN: zone_text(DOMAIN, domain_lines(records)),
        REVERSE4: zone_text(REVERSE4, [f"25 PTR {HOST}."]),
        REVERSE6: zone_text(REVERSE6, []),
        LISTING_ZONE: zone_text(LISTING_ZONE, ["25.2.0.192 A 127.0.0.2",
                                               '25.2.0.192 TXT "listed for testing"']),
        CLEAN_ZONE: zone_text(CLEAN_ZONE, []),
    }
