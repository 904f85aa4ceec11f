"""The DNS records each local domain must publish, as a table and as a BIND zone file (pure).

One list of `Record`s per domain: MX, the host name's A/AAAA, SPF, DKIM (from the domain's
keys), DMARC, MTA-STS (TXT id and the policy host), TLS-RPT, autoconfig/autodiscover and
the RFC 6186 SRV records. The console's DNS page, its live check (`dns_check.py`) and
`mailstead dns records` all read this list, so what is shown, checked and downloaded agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.dkim.records import TTL, txt_rdata

MTA_STS_MODES = ("enforce", "testing", "none")
MX_PREFERENCE = 10
SRV_WEIGHT = 1
# RFC 6186 3.1 and RFC 8314 5.1: implicit TLS first (lower priority), IMAP before POP3.
# (service, priority, which listen.* port the client connects to)
SRV_SERVICES = (
    ("_submissions._tcp", 0, "submissions"), ("_submission._tcp", 10, "submission"),
    ("_imaps._tcp", 0, "imaps"), ("_imap._tcp", 10, "imap"),
    ("_pop3s._tcp", 20, "pop3s"), ("_pop3._tcp", 30, "pop3"),
)
STANDARD_PORTS = {"submissions": 465, "submission": 587, "imaps": 993, "imap": 143,
                  "pop3s": 995, "pop3": 110}


@dataclass(frozen=True)
class ServerFacts:
    """What the records point at: this server's name, public addresses, ports, policy."""

    hostname: str
    ipv4: str = ""                 # public IPv4 address; "" when not known
    ipv6: str = ""                 # public IPv6 address; "" when there is none
    ports: tuple[tuple[str, int], ...] = tuple(STANDARD_PORTS.items())
    mta_sts_mode: str = "testing"
    mta_sts_max_age: int = 604_800
    report_local: str = "postmaster"   # where DMARC aggregate and TLS-RPT reports go

    @property
    def host(self) -> str:
        return self.hostname.rstrip(".").lower()

    def port(self, service: str) -> int:
        return dict(self.ports).get(service, STANDARD_PORTS[service])


@dataclass(frozen=True)
class Record:
    """One record to publish.

    `key` is stable between checks (results and alerts are keyed on it); `value` is the
    RDATA as the table shows it (TXT unquoted and joined); "" means "this server's address,
    not configured" (published as a comment, checked for presence only).
    """

    key: str
    purpose: str
    name: str          # absolute owner name, lower case, without the root dot
    rtype: str
    value: str
    note: str = ""

    def in_zone(self, domain: str) -> bool:
        return self.name == domain or self.name.endswith("." + domain)


def mta_sts_policy(facts: ServerFacts) -> str:
    """The RFC 8461 3.2 policy text served at https://mta-sts.<domain>/.well-known/mta-sts.txt
    (CRLF line ends, as 3.2's ABNF asks; mx is our host name)."""
    lines = ["version: STSv1", f"mode: {facts.mta_sts_mode}", f"mx: {facts.host}",
             f"max_age: {facts.mta_sts_max_age}"]
    return "\r\n".join(lines) + "\r\n"


def mta_sts_id(facts: ServerFacts) -> str:
    """RFC 8461 3.1 id (1-32 alphanumerics): a digest of the policy, so it changes exactly
    when the policy does and senders fetch the new one."""
    return hashlib.sha256(mta_sts_policy(facts).encode()).hexdigest()[:20]


def records_for(domain: str, facts: ServerFacts,
                dkim: Sequence[tuple[str, str]] = ()) -> list[Record]:
    """Every record `domain` (a normalised A-label) publishes; `dkim` is (owner, TXT value)
    per published selector (active and pending)."""
    host = facts.host
    report = f"mailto:{facts.report_local}@{domain}"
    found = [Record("mx", "Mail exchanger", domain, "MX", f"{MX_PREFERENCE} {host}.")]
    found += _host_addresses(facts)
    found.append(Record("spf", "SPF: who may send as the domain (RFC 7208)", domain, "TXT",
                        "v=spf1 mx -all"))
    found += [Record(f"dkim:{owner.split('.', 1)[0]}", "DKIM public key (RFC 6376)",
                     owner.lower(), "TXT", value) for owner, value in dkim]
    found.append(Record("dmarc", "DMARC policy (RFC 7489)", f"_dmarc.{domain}", "TXT",
                        f"v=DMARC1; p=quarantine; rua={report}"))
    found.append(Record("mta-sts", "MTA-STS policy id (RFC 8461)", f"_mta-sts.{domain}",
                        "TXT", f"v=STSv1; id={mta_sts_id(facts)}"))
    found += _alias_of_host("mta-sts-host", "MTA-STS policy host (RFC 8461 3.3)",
                            f"mta-sts.{domain}", facts, addresses=True)
    found.append(Record("tls-rpt", "TLS reporting (RFC 8460)", f"_smtp._tls.{domain}", "TXT",
                        f"v=TLSRPTv1; rua={report}"))
    found += _alias_of_host("autoconfig", "Thunderbird autoconfig", f"autoconfig.{domain}",
                            facts, addresses=False)
    found += _alias_of_host("autodiscover", "Outlook Autodiscover", f"autodiscover.{domain}",
                            facts, addresses=False)
    found += [Record(f"srv:{service}", "Client service (RFC 6186)", f"{service}.{domain}",
                     "SRV", f"{priority} {SRV_WEIGHT} {facts.port(port)} {host}.")
              for service, priority, port in SRV_SERVICES]
    return found


def _host_addresses(facts: ServerFacts) -> list[Record]:
    """A (always: without IPv4 there is no mail) and AAAA (when configured) of the host."""
    found = [Record("host-a", "Address of the mail server", facts.host, "A", facts.ipv4,
                    "" if facts.ipv4 else "public IPv4 address not set (dns.public_ipv4)")]
    if facts.ipv6:
        found.append(Record("host-aaaa", "IPv6 address of the mail server", facts.host,
                            "AAAA", facts.ipv6))
    return found


def _alias_of_host(key: str, purpose: str, name: str, facts: ServerFacts,
                   addresses: bool) -> list[Record]:
    """`name` pointing at this server: A/AAAA when `addresses` and the address is known,
    else a CNAME to the host name (never a CNAME to itself)."""
    if name == facts.host or (addresses and facts.ipv4):
        found = [Record(key, purpose, name, "A", facts.ipv4)]
        if facts.ipv6:
            found.append(Record(key + "-aaaa", purpose, name, "AAAA", facts.ipv6))
        return found
    return [Record(key, purpose, name, "CNAME", f"{facts.host}.")]


def rdata_text(record: Record) -> str:
    """The record's RDATA in zone-file syntax (TXT quoted and split at 255 octets)."""
    return txt_rdata(record.value) if record.rtype == "TXT" else record.value


def zone_line(record: Record) -> str:
    return f"{record.name}. {TTL} IN {record.rtype} {rdata_text(record)}"


def zone_file(domain: str, facts: ServerFacts, records: Sequence[Record]) -> str:
    """The records as BIND zone-file lines with absolute names (so they can be pasted into
    an existing zone). A record outside the zone, or whose address is not configured, is a
    comment saying what to publish where."""
    lines = [f"; DNS records for {domain} (mail server {facts.host}), from Mailstead",
             f"; paste into the zone of {domain}; TTL {TTL} seconds"]
    for record in records:
        if not record.value:
            lines.append(f"; {record.name}. {TTL} IN {record.rtype} <this server's public "
                         f"address>  ({record.note or 'not configured'})")
        elif not record.in_zone(domain):
            lines.append(f"; in the zone of {record.name}: {zone_line(record)}")
        else:
            lines.append(zone_line(record))
    if not any(r.key.startswith("dkim:") for r in records):
        lines.append(f"; no DKIM keys for {domain}: create them in the console or with "
                     f"`mailstead dkim rotate {domain}`")
    lines.append(f"; MTA-STS policy served by this server at "
                 f"https://mta-sts.{domain}/.well-known/mta-sts.txt")
    return "\n".join(lines) + "\n"


def parse_target(text: str) -> tuple[str, int] | None:
    """Parse `dns.port25_target`: "" (no probe) or `HOST:PORT` (`[v6]:PORT`).

    Raises:
        ValueError: no host, or a port outside 1-65535.
    """
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if len(host) > 253 or any(c.isspace() for c in host):
        raise ValueError(f"not a host name: {host!r}")
    return host, int(port)
