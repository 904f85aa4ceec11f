"""DKIM verification (RFC 6376 6) of every DKIM-Signature of an inbound message, each giving
one RFC 8601 resinfo (`dkim=pass header.d=example.org header.s=sel header.b=abcdefgh`).

dkimpy does the cryptography; this module bounds the work and maps everything dkimpy can
say or throw onto the RFC 8601 2.7.1 results:

- pass: the signature verified. fail: the key was found and valid, but the signature or
  the body hash did not match (the message changed in transit).
- neutral: the signature field cannot be processed: a malformed tag list, missing or bad
  tags, an unknown algorithm, i= outside d=, an expired x= (RFC 6376 6.1.1; RFC 8601
  2.7.1 reserves neutral for "syntax errors or were not otherwise able to be processed").
- permerror: the key record is missing (NXDOMAIN, RFC 6376 6.1.2 "no key for signature"),
  revoked or unusable (3.6.1), or the message's header block cannot be parsed at all.
- temperror: the key lookup timed out or the server failed (RFC 6376 6.1.2 TEMPFAIL).
- policy: the key is shorter than 1024 bits (RFC 8301 3.2), or the signature was not
  looked at because the message carries more than `checks.dkim_max_signatures` of them.
  Those skipped are reported together in ONE `dkim=policy` resinfo (with a comment giving
  their number) rather than one line each: 200 signatures must not make our
  Authentication-Results field 200 lines long.
- none: the message carries no DKIM-Signature.

The key lookups of all verified signatures run at once (asyncio, `auth_dns.TxtLookup`);
dkimpy then runs in a worker thread with a `dnsfunc` that only answers from those lookups.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
from dkim.util import InvalidTagValueList, parse_tag_value  # type: ignore[import-untyped]

from appliance.checks.auth_dns import CachedTxt, DnsTempError, TxtLookup, TxtRecords

MIN_KEY_BITS = 1024            # RFC 8301 3.2: RSA keys shorter than 1024 bits are refused
HEADER_B_CHARS = 8             # RFC 6008 4: enough of b= to tell signatures apart
MAX_REASON = 120
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z", re.IGNORECASE)
_BYTES_REPR = re.compile(r"\bb'([^']*)'")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")      # RFC 2045 token

# dkimpy logs every failure at ERROR through its logger; our log line is the check's.
_DKIMPY_LOG = logging.getLogger("mailstead.dkim_verify.dkimpy")
_DKIMPY_LOG.propagate = False
_DKIMPY_LOG.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class DkimResult:
    """One signature's verification result.

    Attributes:
        result: pass, fail, neutral, policy, temperror, permerror or none (RFC 8601 2.7.1).
        domain: the signature's d= (lower-cased; "" when it could not be read).
        selector: its s= ("" when it could not be read).
        b: the first characters of its b= (RFC 6008), "" when unknown.
        reason: why, for the log and as an A-R comment; "" for pass.
    """

    result: str
    domain: str = ""
    selector: str = ""
    b: str = ""
    reason: str = ""

    @property
    def resinfo(self) -> str:
        """The RFC 8601 resinfo: `dkim=RESULT (reason) header.d=D header.s=S header.b=B`."""
        parts = [f"dkim={self.result}"]
        if self.reason:
            parts.append(comment(self.reason))
        for name, value in (("header.d", self.domain), ("header.s", self.selector),
                            ("header.b", self.b)):
            if value:
                parts.append(f"{name}={pvalue(value)}")
        return " ".join(parts)


def comment(text: str) -> str:
    """`text` as an RFC 5322 comment, safe inside an A-R field (printable ASCII only: the
    authres parser that ARC sealing uses refuses UTF-8 comments; no ';', parentheses or
    backslashes; bounded length)."""
    clean = "".join(c if c.isascii() and c.isprintable() and c not in "()\\;" else " "
                    for c in text)
    return "(" + " ".join(clean.split())[:MAX_REASON] + ")"


def pvalue(text: str) -> str:
    """`text` as an RFC 8601 pvalue: a token when it is one, else a quoted-string."""
    if _TOKEN.match(text):
        return text
    clean = "".join(c for c in text if c.isprintable() and c not in "\\\";")
    return '"' + clean[:MAX_REASON] + '"'


@dataclass(frozen=True)
class _Signature:
    """What a DKIM-Signature field says before verification (or why it is unusable)."""

    index: int
    domain: str = ""
    selector: str = ""
    b: str = ""
    problem: str = ""

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def result(self, result: str, reason: str = "") -> DkimResult:
        return DkimResult(result, self.domain, self.selector, self.b, reason)


def _text(value: Any) -> str:
    """Bytes or an exception as text; dkimpy's b'...' reprs inside messages unwrapped."""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return _BYTES_REPR.sub(r"\1", str(value))


def read_signature(index: int, value: bytes) -> _Signature:
    """The d=, s= and b= of one DKIM-Signature field value; a `problem` when the tag list
    is malformed or d=/s= are not domain names (RFC 6376 3.5, 6.1.1)."""
    try:
        tags = parse_tag_value(value)
    except (InvalidTagValueList, ValueError, IndexError) as exc:
        return _Signature(index, problem=f"malformed tag list: {_text(exc)}")
    domain = _text(tags.get(b"d", b"")).strip().lower().rstrip(".")
    selector = _text(tags.get(b"s", b"")).strip().lower()
    b = re.sub(r"\s+", "", _text(tags.get(b"b", b"")))[:HEADER_B_CHARS]
    if not is_dns_name(domain):
        return _Signature(index, "", "", b, "missing or invalid d=")
    if not is_dns_name(selector):
        return _Signature(index, domain, "", b, "missing or invalid s=")
    return _Signature(index, domain, selector, b)


def is_dns_name(text: str) -> bool:
    """Whether `text` is a dot-separated run of DNS labels (letters, digits, `-`, `_`)."""
    return 0 < len(text) <= 253 and all(_LABEL.match(label) for label in text.split("."))


def signature_values(headers: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """The values of the DKIM-Signature fields among dkimpy's parsed `headers`, in order."""
    return [value for name, value in headers if name.strip().lower() == b"dkim-signature"]


class DkimVerifier:
    """Verify all DKIM signatures of a message (at most `max_signatures` of them)."""

    def __init__(self, lookup: TxtLookup, max_signatures: int) -> None:
        self._lookup = lookup
        self._max = max_signatures

    async def verify(self, message: bytes) -> tuple[DkimResult, ...]:
        """One result per signature verified, then at most one `policy` result for those
        over the limit; `(none,)` when unsigned. Never raises for the message's content."""
        loop = asyncio.get_running_loop()
        parsed, signatures, skipped = await loop.run_in_executor(
            None, self._prepare, message)
        if parsed is None:
            return (DkimResult("permerror", reason="message header unparseable"),)
        if not signatures:
            return (DkimResult("none"),)
        answers = await self._fetch_keys(signatures)
        results: list[DkimResult] = await loop.run_in_executor(
            None, verify_all, parsed, signatures, CachedTxt(answers))
        if skipped:
            results.append(DkimResult(
                "policy", reason=f"{skipped} more signatures not verified, "
                f"limit {self._max}"))
        return tuple(results)

    def _prepare(self, message: bytes) -> tuple[Any, list[_Signature], int]:
        """Parse the message (in the worker thread); the signatures to verify, and how many
        more there are."""
        try:
            parsed = dkim.DKIM(message, logger=_DKIMPY_LOG, minkey=MIN_KEY_BITS)
        except Exception:      # dkimpy raises several types for a malformed header block
            return None, [], 0
        values = signature_values(parsed.headers)
        wanted = values[:self._max]
        return (parsed, [read_signature(i, v) for i, v in enumerate(wanted)],
                len(values) - len(wanted))

    async def _fetch_keys(self, signatures: Sequence[_Signature]
                          ) -> dict[str, TxtRecords | DnsTempError]:
        """Look up every distinct key record at once."""
        names = sorted({s.key_name for s in signatures if not s.problem})
        found = await asyncio.gather(*(self._one(name) for name in names))
        return dict(zip(names, found, strict=True))

    async def _one(self, name: str) -> TxtRecords | DnsTempError:
        try:
            return await self._lookup.txt(name)
        except DnsTempError as exc:
            return exc


def verify_all(parsed: Any, signatures: Sequence[_Signature],
               dnsfunc: CachedTxt) -> list[DkimResult]:
    """Verify each signature with dkimpy (blocking: run in a worker thread)."""
    return [verify_one(parsed, sig, dnsfunc) for sig in signatures]


def verify_one(parsed: Any, sig: _Signature, dnsfunc: CachedTxt) -> DkimResult:
    """One signature's result; see the module docstring for the mapping."""
    if sig.problem:
        return sig.result("neutral", sig.problem)
    try:
        parsed.verify_headerprep(sig.index)     # tag syntax and values (RFC 6376 6.1.1)
    except Exception as exc:     # ValidationError, MessageFormatError, and dkimpy's slips
        return sig.result("neutral", _text(exc))
    try:
        ok = parsed.verify(idx=sig.index, dnsfunc=dnsfunc)
    except DnsTempError as exc:
        return sig.result("temperror", f"key lookup failed: {exc}")
    except dkim.KeyFormatError as exc:
        if 0 < int(getattr(parsed, "keysize", 0) or 0) < MIN_KEY_BITS:
            return sig.result("policy", f"key of {parsed.keysize} bits")
        return sig.result("permerror", _text(exc))
    except dkim.ValidationError as exc:           # after the key: the body hash differs
        return sig.result("fail", _text(exc).split(" (")[0])
    except Exception as exc:     # MessageFormatError (e.g. a bad c=), dkimpy's own slips
        return sig.result("neutral", f"{type(exc).__name__}: {_text(exc)}")
    if ok:
        return sig.result("pass")
    return _why_not(sig, dnsfunc)


def _why_not(sig: _Signature, dnsfunc: CachedTxt) -> DkimResult:
    """A signature dkimpy did not accept: no key, a bad key, or a bad signature."""
    record = dnsfunc(sig.key_name)
    if record is None:
        return sig.result("permerror", "no key for signature")
    try:
        dkim.evaluate_pk(sig.key_name.encode("ascii", "replace"), record)
    except Exception as exc:
        return sig.result("permerror", f"unusable key: {_text(exc)}")
    return sig.result("fail", "signature did not verify")
