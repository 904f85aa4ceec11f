"""ARC chain validation (RFC 8617 5.2) of an inbound message: which chain validation status
(cv) the message's ARC sets give, and who sealed them.

dkimpy does the cryptography; this module bounds what a hostile message can make it do and
turns everything it can throw into a defined outcome. The rules that decide here:

- No ARC header field at all: cv=none (RFC 8617 4.4). ARC header fields without a usable
  instance tag, more than 50 sets or an i= above 50 (RFC 8617 4.2.1: i is 1 to 50), a
  missing or doubled member of a set, a gap in the instances: cv=fail (5.2 steps 1-3,
  "structural" failures).
- The newest ARC-Message-Signature and every ARC-Seal must verify (5.2 steps 4-6); the
  first set must say cv=none, later ones cv=pass; any seal that recorded cv=fail ends the
  chain as fail (5.2 step 2).
- A key whose DNS lookup fails (timeout, SERVFAIL) leaves its signature unverified: the
  chain is cv=fail. ARC has no temperror (RFC 8617 4.4 defines none, pass and fail only),
  and a chain we could not validate must not count as passed; the outcome's `reason` says
  "dns" so the log tells a broken resolver from a forged seal.

`verify_chain` is synchronous (dkimpy is): callers run it in a worker thread.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints

from appliance.checks.auth_dns import DnsFunc
from appliance.smtp.submission_policy import split_header

MAX_ARC_SETS = 50              # RFC 8617 4.2.1: the instance tag i= runs from 1 to 50
ARC_FIELDS = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")
MAX_ARC_FIELDS = 3 * MAX_ARC_SETS
MIN_KEY_BITS = 1024            # RFC 8301 3.2: verifiers accept RSA keys of 1024 bits and up
ARC_NAME = re.compile(rb"^arc-(?:seal|message-signature|authentication-results)[ \t]*:",
                      re.IGNORECASE | re.MULTILINE)
INSTANCE = re.compile(rb"(?:^|;)\s*i\s*=\s*(\d{1,6})\s*(?:;|$)", re.IGNORECASE)

# dkimpy logs each failure at ERROR through its logger; our log line is the outcome's.
_DKIMPY_LOG = logging.getLogger("dkimpy.mailstead-arc")
_DKIMPY_LOG.propagate = False
_DKIMPY_LOG.setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class ArcOutcome:
    """The chain validation status of one message.

    Attributes:
        cv: "none", "pass" or "fail" (RFC 8617 4.1.3).
        sealers: the d= of each ARC-Seal, instance 1 first, when cv is "pass"; empty
            otherwise (a failed chain proves nothing about who sealed it).
        resinfo: the RFC 8601 resinfo for Authentication-Results ("arc=pass ...").
        reason: why, for the log only ("" for pass and none).
    """

    cv: str
    sealers: tuple[str, ...]
    resinfo: str
    reason: str = ""

    @property
    def dns_failed(self) -> bool:
        """True when a key lookup failed (timeout, SERVFAIL) and the chain counted as
        failed for it: a caller about to reject the message because no trusted chain
        passed may prefer a 4xx, so that the sender retries when DNS answers again."""
        return self.cv == "fail" and self.reason.startswith("dns:")


def verify_chain(message: bytes, dnsfunc: DnsFunc, *, remote_ip: str = "") -> ArcOutcome:
    """Validate the ARC chain of `message` (RFC 8617 5.2); never raises for its content.

    Args:
        message: the message as received (CRLF or LF line ends).
        dnsfunc: dkimpy's TXT lookup (`name: bytes, timeout=` -> record bytes or None),
            e.g. `checks.auth_dns.TxtLookup(...).blocking()`.
        remote_ip: the SMTP client's address for the resinfo's smtp.remote-ip
            (RFC 8617 10.1); "" leaves it out.

    Returns:
        The outcome; cv "fail" for anything malformed, over the limits or unverifiable.
    """
    dns_errors: list[str] = []
    try:
        cv, sealers, reason = _validate(message, _guarded(dnsfunc, dns_errors))
    except Exception as exc:   # dkimpy raises many types on hostile input; all mean "fail"
        # ... unless the header block it could not parse has no ARC field at all (4.4).
        cv = "fail" if ARC_NAME.search(header_block(message)) else "none"
        sealers, reason = (), f"malformed: {type(exc).__name__}: {exc}"[:200]
    if cv == "fail" and dns_errors:
        reason = f"dns: {dns_errors[0]}"[:200]
    return ArcOutcome(cv, sealers if cv == "pass" else (), resinfo(cv, remote_ip), reason)


def resinfo(cv: str, remote_ip: str = "") -> str:
    """The Authentication-Results resinfo for `cv` (RFC 8617 10.1: smtp.remote-ip). An
    IPv6 address is quoted: ':' may not appear in an RFC 2045 token (RFC 8601 2.2 pvalue),
    and parsers such as the one dkimpy's sealing uses refuse the whole field otherwise."""
    address = re.sub(r"[^0-9A-Fa-f.:]", "", remote_ip)
    if not address:
        return f"arc={cv}"
    return f'arc={cv} smtp.remote-ip="{address}"' if ":" in address \
        else f"arc={cv} smtp.remote-ip={address}"


class _NewestAmsOnly(dkim.ARC):  # type: ignore[misc]
    """dkimpy's ARC validation without the work RFC 8617 5.2 does not ask for: only the
    newest ARC-Message-Signature must verify (step 5), but dkimpy hashes the body and looks
    up the key for every set's, which for 50 sets on a 5 MB message is 50 body hashes
    (about 25 s of CPU). Older ones are reported as not verified, unread."""

    newest = b""

    def verify_sig(self, sig: dict[bytes, bytes], include_headers: list[bytes],
                   sig_header: tuple[bytes, bytes], dnsfunc: DnsFunc) -> bool:
        if sig_header[0].lower() == b"arc-message-signature" and sig.get(b"i") != self.newest:
            return False
        return bool(super().verify_sig(sig, include_headers, sig_header, dnsfunc))


def _validate(message: bytes, dnsfunc: DnsFunc) -> tuple[str, tuple[str, ...], str]:
    arc = _NewestAmsOnly(message, logger=_DKIMPY_LOG, minkey=MIN_KEY_BITS)
    headers = [(bytes(name), bytes(value)) for name, value in arc.headers]
    problem = structure_problem(headers)
    if problem == "none":
        return "none", (), ""
    if problem:
        return "fail", (), problem
    arc.newest = str(newest_instance(headers)).encode()
    status, results, why = arc.verify(dnsfunc=dnsfunc)
    if status == dkim.CV_Pass:
        sealers = tuple(_text(r["as-domain"]) for r in reversed(results))
        return ("pass", sealers, "") if all(sealers) else ("fail", (), "empty d=")
    # None: a seal recorded cv=fail, the chain is terminated (RFC 8617 5.2 step 2).
    return "fail", (), str(why)[:200]


def structure_problem(headers: list[tuple[bytes, bytes]]) -> str:
    """Check the ARC header fields' shape before any cryptography (RFC 8617 4.2.1, 5.2
    steps 1-3): "none" when there are none, "" when the sets look whole, else the problem.

    Args:
        headers: the message's (name, value) header fields in order.
    """
    fields = [(name.strip().lower(), value) for name, value in headers
              if name.strip().lower() in ARC_FIELDS]
    if not fields:
        return "none"
    if len(fields) > MAX_ARC_FIELDS:
        return f"more than {MAX_ARC_SETS} ARC sets"
    seen: dict[int, set[bytes]] = {}
    for name, value in fields:
        found = INSTANCE.search(_unfold(value))
        if found is None:
            return f"{name.decode()} without a valid i= tag"
        instance = int(found.group(1))
        if not 1 <= instance <= MAX_ARC_SETS:
            return f"instance {instance} outside 1..{MAX_ARC_SETS}"
        members = seen.setdefault(instance, set())
        if name in members:
            return f"two {name.decode()} fields for instance {instance}"
        members.add(name)
    if sorted(seen) != list(range(1, len(seen) + 1)):
        return "ARC instances are not 1..N without gaps"
    if any(len(members) != len(ARC_FIELDS) for members in seen.values()):
        return "an ARC set is incomplete"
    return ""


def newest_instance(headers: list[tuple[bytes, bytes]]) -> int:
    """The highest i= of the ARC header fields (0 for none); call after
    `structure_problem` found the sets whole."""
    found = [INSTANCE.search(_unfold(value)) for name, value in headers
             if name.strip().lower() in ARC_FIELDS]
    return max((int(m.group(1)) for m in found if m is not None), default=0)


def header_block(message: bytes) -> bytes:
    """The message's header section (all of it when there is no empty line)."""
    return split_header(message)[0]


def _unfold(value: bytes) -> bytes:
    return re.sub(rb"\r?\n[ \t]+", b" ", value).strip()


def _guarded(dnsfunc: DnsFunc, errors: list[str]) -> DnsFunc:
    """`dnsfunc` with answers cached per name (chains often reuse one key), any exception
    turned into dkimpy's DnsTimeoutError (which it maps to "signature not verified") and
    noted in `errors`. After one failure every further lookup fails at once: the chain is
    already failed, and 50 seals must not cost 50 timeouts."""
    answers: dict[bytes, bytes | None] = {}

    def lookup(name: bytes, timeout: float = 5.0) -> bytes | None:
        if errors:
            raise dkim.DnsTimeoutError("an earlier key lookup failed")
        if name in answers:
            return answers[name]
        try:
            record: Any = dnsfunc(name, timeout=timeout)
        except Exception as exc:
            errors.append(f"{_text(name)}: {type(exc).__name__}")
            raise dkim.DnsTimeoutError(str(exc)) from exc
        answers[name] = record if isinstance(record, bytes) else None
        return answers[name]

    return lookup


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value
