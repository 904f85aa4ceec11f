"""The DNS records a local domain publishes, as zone-file lines (pure text, no I/O).

MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, autoconfig/autodiscover CNAMEs and the RFC 6186
SRV records, all pointing at the appliance's `server.hostname`.
"""

from __future__ import annotations

import hashlib

TTL = 3600
MAX_STRING = 255     # RFC 1035 3.3: one <character-string> holds at most 255 octets

# RFC 6186 3 and RFC 8314 5.1: implicit TLS is preferred (lower priority), IMAP over POP3.
SRV_SERVICES = (
    ("_submissions._tcp", 0, 465), ("_submission._tcp", 10, 587),
    ("_imaps._tcp", 0, 993), ("_imap._tcp", 10, 143),
    ("_pop3s._tcp", 20, 995), ("_pop3._tcp", 30, 110),
)


def txt_rdata(value: str) -> str:
    """`value` as TXT RDATA: quoted strings of at most 255 octets each (RFC 7208 3.3 and
    RFC 6376 3.6.2.2: verifiers concatenate them)."""
    raw = value.encode("ascii")
    chunks = [raw[i:i + MAX_STRING] for i in range(0, len(raw), MAX_STRING)] or [b""]
    return " ".join('"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for c in chunks)


def txt_line(owner: str, value: str) -> str:
    return f"{owner}. {TTL} IN TXT {txt_rdata(value)}"


def mta_sts_policy(domain: str, hostname: str) -> str:
    """The RFC 8461 3.2 policy text to serve at https://mta-sts.<domain>/.well-known/
    mta-sts.txt (mode testing until the operator has seen TLS-RPT reports)."""
    return f"version: STSv1\nmode: testing\nmx: {hostname}\nmax_age: 604800\n"


def zone_lines(domain: str, hostname: str, dkim: list[tuple[str, str]]) -> list[str]:
    """Every record `domain` should publish; `dkim` is (owner, TXT value) per selector."""
    host = hostname.rstrip(".")
    policy_id = hashlib.sha256(mta_sts_policy(domain, host).encode()).hexdigest()[:16]
    lines = [
        f"; records for {domain}, mail server {host}",
        f"{domain}. {TTL} IN MX 10 {host}.",
        txt_line(domain, "v=spf1 mx -all"),
    ]
    lines += [txt_line(owner, value) for owner, value in dkim]
    if not dkim:
        lines.append(f"; no DKIM keys for {domain}: run `mailstead dkim rotate {domain}`")
    lines += [
        txt_line(f"_dmarc.{domain}", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
        txt_line(f"_mta-sts.{domain}", f"v=STSv1; id={policy_id}"),
        f"; MTA-STS policy: serve https://mta-sts.{domain}/.well-known/mta-sts.txt",
        f"mta-sts.{domain}. {TTL} IN CNAME {host}.",
        txt_line(f"_smtp._tls.{domain}", f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
        f"autoconfig.{domain}. {TTL} IN CNAME {host}.",
        f"autodiscover.{domain}. {TTL} IN CNAME {host}.",
    ]
    lines += [f"{service}.{domain}. {TTL} IN SRV {priority} 1 {port} {host}."
              for service, priority, port in SRV_SERVICES]
    return lines
