"""The outbound DKIM signer (RFC 6376, RFC 8463): the queue runner's `MessageSigner`.

A message is signed when the domain of its From header is a local domain with keys: d= is
then the From domain, which DMARC alignment (RFC 7489 3.1.1) wants. It gets two
signatures, rsa-sha256 and ed25519-sha256 (RFC 8463 3: verifiers that know only RSA still
find one they can check), relaxed/relaxed, never l= (RFC 6376 8.2: a length limit lets
anyone append content). Mail of other domains (forwarded mail) gets no DKIM signature but
an ARC seal of the forwarding domain (dkim/arc_seal.py, RFC 8617). Null-sender
mail (our bounces, From MAILER-DAEMON@hostname) is signed for the hostname or, failing
that, its parent domain, when that is local.
"""

from __future__ import annotations

import email.utils
import threading
from pathlib import Path

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints

from appliance.checks.dmarc import header_fields
from appliance.core import log
from appliance.core.addresses import AddressError, normalise_domain
from appliance.dkim import keys
from appliance.dkim.arc_seal import ArcSealer
from appliance.dkim.keys import SigningKey
from appliance.smtp.submission_policy import split_header

# RFC 6376 5.4.1's recommended set; From is signed once more than it occurs
# ("oversigning", RFC 6376 8.15) so that no second From can be added after signing.
SIGNED_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "mime-version",
                  "content-type", "reply-to", "in-reply-to", "references")
MAX_HEADER_SCAN = 256 * 1024    # a header block larger than this is not searched for From


def header_names(content: bytes) -> list[str]:
    """The lower-cased field names of the header block, in order (continuations skipped)."""
    names: list[str] = []
    for line in split_header(content[:MAX_HEADER_SCAN])[0].split(b"\n"):
        if not line or line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


def from_domain(content: bytes) -> str | None:
    """The domain of the single From address (RFC 5322 3.6.2), or None if there is not
    exactly one From field with exactly one parseable address."""
    values = header_fields(content[:MAX_HEADER_SCAN], b"from")   # the same parse as DMARC's
    return _address_domain(values[0]) if len(values) == 1 else None


def _address_domain(value: str) -> str | None:
    addresses = [addr for _, addr in email.utils.getaddresses([value]) if addr]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    try:
        return normalise_domain(addresses[0].rpartition("@")[2])
    except AddressError:
        return None


class DkimSigner:
    """`MessageSigner` that signs with the keys under `data_dir/dkim/` (read at each
    attempt, cached per state-file version, so a rotation applies without a restart)."""

    def __init__(self, data_dir: Path, hostname: str) -> None:
        self._data_dir = data_dir
        self._hostname = hostname.lower().rstrip(".")
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, list[SigningKey]]] = {}
        self._sealer = ArcSealer(data_dir, hostname, self._keys)

    def sign(self, sender: str, content: bytes) -> bytes:
        """`content` with DKIM-Signature fields prepended when its From domain is ours,
        then, when it is mail our aliases forward (the envelope sender is not in one of
        our domains), our ARC set (dkim/arc_seal.py) in front of that. Errors (a broken
        key) raise: the runner defers the attempt."""
        return self._sealer.seal(sender, self.dkim_sign(sender, content))

    def dkim_sign(self, sender: str, content: bytes) -> bytes:
        """`content` with DKIM-Signature fields prepended, or unchanged when its From
        domain is not ours."""
        domain = self.signing_domain(sender, content)
        if domain is None:
            return content
        found = self._keys(domain)
        include = [name for name in header_names(content) if name in SIGNED_HEADERS]
        include.append("from")
        try:
            fields = [dkim.sign(content, key.selector.encode(), domain.encode(), key.private,
                                signature_algorithm=key.algorithm, include_headers=include,
                                canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
                      for key in found]
        except (dkim.MessageFormatError, IndexError) as exc:
            # A header dkimpy cannot parse will not parse at the next attempt either:
            # deferring would only hold the mail until it bounces, so it leaves unsigned.
            # (IndexError: dkimpy 1.1.8's parser fails so on a leading continuation line.)
            log.event("dkim.unsignable", domain=domain, reason=str(exc))
            return content
        log.event("dkim.signed", domain=domain,
                  selectors=",".join(key.selector for key in found))
        return b"".join(fields) + content

    def signing_domain(self, sender: str, content: bytes) -> str | None:
        """The d= to sign with, or None for mail that is not ours to sign."""
        candidates: list[str] = []
        domain = from_domain(content)
        if domain is not None:
            candidates.append(domain)
        if sender == "" and self._hostname:
            candidates += [self._hostname, self._hostname.partition(".")[2]]
        for candidate in candidates:
            if candidate and self._keys(candidate):
                return candidate
        return None

    def _keys(self, domain: str) -> list[SigningKey]:
        state = keys.domain_dir(self._data_dir, domain) / keys.STATE_FILE
        try:
            version = state.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        with self._lock:
            cached = self._cache.get(domain)
            if cached is None or cached[0] != version:
                cached = (version, keys.signing_keys(self._data_dir, domain))
                self._cache[domain] = cached
            return cached[1]
