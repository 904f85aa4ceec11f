"""ARC sealing (RFC 8617 5.1) of mail our aliases forward to other domains: the outbound
signer (dkim/signer.py) calls `ArcSealer.seal` for every queued message.

Which messages: those whose envelope sender is not in one of our domains (the domains
table of mailstead.db) and not the null sender: the MX accepted them for an alias and the
queue is sending them on. Our users' own mail and our bounces are never sealed.

Which domain seals (d=): the domain of the alias the message came in for, read from our
own trace field (the topmost `Received: ... by <hostname> (Mailstead) ... for <alias>`,
which the MX writes when a message has one recipient); when that is missing (several
recipients) or not one of our domains with keys, the server's primary domain: the local
domain that is the host name or its parent, else the first local domain by name. The key
is that domain's active RSA DKIM key (dkimpy seals with rsa-sha256 only), whose selector is
already published for DKIM.

What goes into the set: the ARC-Authentication-Results copy our MX's own
`Authentication-Results` (authserv-id = server.hostname), and the chain status (cv) it
recorded as `arc=`. RFC 8617 5.1 step 1: a chain whose newest seal already says cv=fail
is not sealed again; 5.1.2: a chain our MX found broken (arc=fail) is sealed with cv=fail,
its seal covering only our set; 4.2.1: no 51st set. A message without our
Authentication-Results (or, behind an existing chain, without an arc= result) is not
sealed: dkimpy ends the chain there, as we could not say what we saw.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints

from appliance.checks.arc import MAX_ARC_SETS, header_block
from appliance.core import log
from appliance.dkim.keys import SigningKey
from appliance.storage.db import DB_NAME

# The fields our seal's ARC-Message-Signature covers (RFC 8617 4.1.2: like DKIM's h=).
SEALED_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "mime-version",
                  "content-type", "content-transfer-encoding", "reply-to", "in-reply-to",
                  "references")
_SEAL = re.compile(rb"^arc-seal[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_TAG = re.compile(rb"(?:^|;)\s*(i|cv)\s*=\s*([A-Za-z0-9]+)", re.IGNORECASE)
_RECEIVED = re.compile(rb"^received[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_FOR = re.compile(rb"\bfor\s+<([^<>@\s]+@([A-Za-z0-9.-]+))>")

KeyLookup = Callable[[str], list[SigningKey]]


def local_domains(data_dir: Path) -> list[str]:
    """The domains of mailstead.db, sorted; [] when the database does not exist yet (it
    is only read: the signer never creates it)."""
    path = data_dir / DB_NAME
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=5.0)
    try:
        return sorted(str(row[0]) for row in conn.execute("SELECT name FROM domains"))
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def newest_seal(content: bytes) -> tuple[int, str]:
    """The instance and cv of the newest ARC-Seal in the header block ((0, "") for none)."""
    best = (0, "")
    for found in _SEAL.finditer(header_block(content)):
        tags = {k.lower(): v.lower() for k, v in _TAG.findall(found.group(1))}
        instance = tags.get(b"i", b"0")
        if instance.isdigit() and int(instance) > best[0]:
            best = (int(instance), tags.get(b"cv", b"").decode("ascii", "replace"))
    return best


def trace_recipient_domain(content: bytes, hostname: str) -> str | None:
    """The recipient domain our own topmost Received field names (`for <a@domain>`), or
    None when the topmost Received is not ours or names no single recipient."""
    found = _RECEIVED.search(header_block(content))
    if found is None:
        return None
    value = re.sub(rb"\s+", b" ", found.group(1))
    if f"by {hostname} (mailstead)".encode() not in value.lower():
        return None
    recipient = _FOR.search(value)
    return recipient.group(2).decode("ascii").lower().rstrip(".") if recipient else None


def sealing_domain(content: bytes, hostname: str, domains: list[str],
                   has_keys: Callable[[str], bool]) -> str | None:
    """The d= for our seal: the alias's domain, else the primary domain (module docstring);
    only domains in `domains` for which `has_keys` holds qualify."""
    usable = [d for d in domains if has_keys(d)]
    alias_domain = trace_recipient_domain(content, hostname)
    if alias_domain in usable:
        return alias_domain
    host = hostname.lower().rstrip(".")
    for candidate in (host, host.partition(".")[2]):
        if candidate in usable:
            return candidate
    return usable[0] if usable else None


class ArcSealer:
    """Adds our ARC set to forwarded mail (see the module docstring for which and how)."""

    def __init__(self, data_dir: Path, hostname: str, key_lookup: KeyLookup) -> None:
        """`hostname`: server.hostname as configured, the authserv-id of our MX's
        Authentication-Results; `key_lookup`: a domain's active DKIM keys (RSA first)."""
        self._data_dir = data_dir
        self._authserv_id = hostname.strip()
        self._hostname = self._authserv_id.lower().rstrip(".")
        self._keys = key_lookup

    def seal(self, sender: str, content: bytes) -> bytes:
        """`content` with our ARC set in front when it is forwarded mail we can seal,
        else unchanged. A broken key raises (the runner defers the attempt)."""
        if not sender or "@" not in sender:
            return content
        domains = local_domains(self._data_dir)
        if sender.rpartition("@")[2].lower().rstrip(".") in domains:
            return content
        instance, cv = newest_seal(content)
        if cv == "fail" or instance >= MAX_ARC_SETS:
            log.event("arc.not_sealed", reason=f"chain at i={instance} cv={cv or 'none'}")
            return content
        domain = sealing_domain(content, self._hostname, domains, lambda d: bool(self._keys(d)))
        if domain is None:
            return content
        return self._seal_as(domain, content)

    def _seal_as(self, domain: str, content: bytes) -> bytes:
        key = next((k for k in self._keys(domain) if k.algorithm == b"rsa-sha256"), None)
        if key is None:
            return content
        names = {n.lower() for n in _header_names(content)}
        include = [h.encode() for h in SEALED_HEADERS if h in names or h == "from"]
        try:
            fields = dkim.arc_sign(content, key.selector.encode(), domain.encode(),
                                   key.private, self._authserv_id.encode(),
                                   include_headers=include)
        except (dkim.DKIMException, IndexError, ValueError) as exc:
            # A message dkimpy cannot parse now will not parse at the next attempt.
            log.event("arc.unsealable", domain=domain, reason=str(exc)[:200])
            return content
        if not fields:
            log.event("arc.not_sealed", domain=domain, reason="no results of ours to seal")
            return content
        log.event("arc.sealed", domain=domain, selector=key.selector, instance=_i(fields[0]))
        return b"".join(fields) + content


def _header_names(content: bytes) -> list[str]:
    return [line.split(b":", 1)[0].strip().decode("ascii", "replace")
            for line in header_block(content).splitlines()
            if line[:1] not in (b" ", b"\t") and b":" in line]


def _i(seal: bytes) -> int:
    found = _TAG.search(seal.partition(b":")[2])
    return int(found.group(2)) if found and found.group(2).isdigit() else 0
