"""TXT record text for zone files (pure): quoting and splitting into 255-octet strings.

The records each domain publishes (MX, SPF, DKIM, DMARC, MTA-STS, SRV, ...) are built by the
console's `webui/dns_records.py`, which uses these helpers.
"""

from __future__ import annotations

TTL = 3600
MAX_STRING = 255     # RFC 1035 3.3: one <character-string> holds at most 255 octets


def txt_rdata(value: str) -> str:
    """`value` as TXT RDATA: quoted strings of at most 255 octets each (RFC 7208 3.3 and
    RFC 6376 3.6.2.2: verifiers concatenate them)."""
    raw = value.encode("ascii")
    chunks = [raw[i:i + MAX_STRING] for i in range(0, len(raw), MAX_STRING)] or [b""]
    return " ".join('"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for c in chunks)


def txt_line(owner: str, value: str) -> str:
    return f"{owner}. {TTL} IN TXT {txt_rdata(value)}"

