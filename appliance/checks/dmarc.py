"""DMARC (RFC 7489): record parsing, policy discovery, identifier alignment and the result.

Everything here is policy logic; the one I/O step, policy discovery, takes its TXT lookup as
an argument. Decisions this module makes (and why):

- Records (6.3, 6.4): `v=DMARC1` must come first; unknown tags are ignored; a missing or
  invalid p= (or an invalid sp=) makes the record count as p=none when its rua= names a
  URI, and unusable otherwise (6.6.3 step 6). An invalid value of another tag (adkim, aspf,
  pct, fo, ri) leaves that tag at its default, so that a typo in pct= does not switch off
  the domain owner's p=reject.
- Discovery (6.6.3): the From domain's `_dmarc` TXT records; when none of them is a DMARC
  record, the Organizational Domain's (public suffix + one label, from the Public Suffix
  List bundled with `publicsuffixlist`: no network fetch). sp= applies only to a record
  found at the Organizational Domain for a From domain below it. Several DMARC records, or
  an unusable one: permerror, no policy. A lookup that fails: temperror (the RFC leaves DNS
  errors to the receiver; we never act on a policy we could not read).
- Alignment (3.1): strict is equality, relaxed is equal Organizational Domains, both
  case-insensitive. A DKIM or SPF temperror on an aligned identifier turns a would-be fail
  into temperror: a DNS hiccup must not bounce legitimate mail.
- pct= (6.6.4): a failing message outside the sample gets the next less strict policy
  (reject -> quarantine -> none); the random source is the caller's (seeded in tests).
- Authors (6.6.1): RFC 5322 allows several addresses in From (and forbids several From
  fields, which forged mail uses). Every distinct author domain, from every From field, is
  evaluated, and the worst outcome with the strictest disposition counts: a second From
  must not hide a forged one. No From field or no usable address: permerror without a
  policy (6.6.1 leaves it to local policy; we accept and record it, we do not reject).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from functools import cache

import idna
from publicsuffixlist import PublicSuffixList

from appliance.smtp.submission_policy import split_header

POLICIES = ("none", "quarantine", "reject")
RESULT_ORDER = ("pass", "none", "permerror", "temperror", "fail")   # worst last
MAX_RECORD = 4096               # longer TXT answers are not a sane DMARC record
MAX_FROM_FIELDS = 10            # a header with more From fields is hostile: judged on these
MAX_AUTHORS = 10                # distinct author domains evaluated (each costs lookups)
_URI = re.compile(r"[a-z][a-z0-9+.-]*:[^\s,!]+(?:![0-9]+[kmgt]?)?\Z", re.IGNORECASE)
_FO = frozenset({"0", "1", "d", "s"})

TxtAnswer = tuple[bytes, ...]
Lookup = Callable[[str], Awaitable[TxtAnswer]]


class NotDmarcRecordError(ValueError):
    """A TXT record that does not start with `v=DMARC1` (discarded, 6.6.3 steps 2 and 4)."""


class DmarcRecordError(ValueError):
    """A DMARC record without a usable policy and no rua= (no DMARC processing, 6.6.3)."""


@dataclass(frozen=True)
class DmarcRecord:
    """A parsed DMARC policy record (RFC 7489 6.3); defaults as the RFC gives them."""

    policy: str
    subdomain_policy: str = ""           # "" = as p=
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: tuple[str, ...] = ("0",)
    ri: int = 86400


def _tags(text: str) -> list[tuple[str, str]]:
    """`name=value` pairs in order; parts without `=` are skipped (ignored like unknown tags)."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            pairs.append((name.strip().lower(), value.strip()))
    return pairs


def _uris(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in value.split(",") if _URI.match(u.strip()))


def _number(value: str, low: int, high: int, default: int) -> int:
    return int(value) if value.isdigit() and low <= int(value) <= high else default


def parse_record(text: str) -> DmarcRecord:
    """Parse one DMARC TXT record.

    Raises:
        NotDmarcRecordError: it does not start with `v=DMARC1`.
        DmarcRecordError: no valid p= (or an invalid sp=) and no rua= URI.
    """
    if len(text) > MAX_RECORD:
        raise NotDmarcRecordError("record too long")
    pairs = _tags(text)
    if not pairs or pairs[0][0] != "v" or pairs[0][1] != "DMARC1":
        raise NotDmarcRecordError("does not start with v=DMARC1")
    tags: dict[str, str] = {}
    for name, value in pairs[1:]:
        tags.setdefault(name, value)          # the first of a repeated tag counts
    rua = _uris(tags.get("rua", ""))
    policy = tags.get("p", "").lower()
    sub = tags.get("sp", "").lower()
    if policy not in POLICIES or (sub and sub not in POLICIES):
        if not rua:                            # 6.6.3 step 6
            raise DmarcRecordError("no valid p= or sp=, and no rua=")
        policy, sub = "none", ""
    fo = tuple(v.strip().lower() for v in tags.get("fo", "0").split(":"))
    return DmarcRecord(
        policy=policy, subdomain_policy=sub,
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=_number(tags.get("pct", "100"), 0, 100, 100),
        rua=rua, ruf=_uris(tags.get("ruf", "")),
        fo=fo if fo and all(v in _FO for v in fo) else ("0",),
        ri=_number(tags.get("ri", "86400"), 0, 2**32 - 1, 86400))


@cache
def _suffix_list() -> PublicSuffixList:
    """The bundled Public Suffix List, loaded on first use (never at import time)."""
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the public suffix plus one label (the domain itself when it is a public
    suffix or has a single label)."""
    name = domain.lower().rstrip(".")
    found = _suffix_list().privatesuffix(name) if name else None
    return found or name


def aligned(author: str, identifier: str, mode: str) -> bool:
    """RFC 7489 3.1.1/3.1.2: `identifier` (a DKIM d= or SPF domain) aligns with the author
    domain: equal in strict mode `s`, same Organizational Domain in relaxed mode `r`."""
    a, b = author.lower().rstrip("."), identifier.lower().rstrip(".")
    if not a or not b:
        return False
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


# -- authors (RFC 7489 6.6.1) ---------------------------------------------------------------

def header_fields(message: bytes, name: bytes) -> list[str]:
    """The unfolded values of the header fields called `name` (lower-case bytes), at most
    MAX_FROM_FIELDS; only the header block is read."""
    values: list[str] = []
    current: list[bytes] | None = None
    for line in split_header(message)[0].splitlines():
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            values.append(b" ".join(current).decode("utf-8", "replace"))
            current = None
        field_name, sep, value = line.partition(b":")
        if sep and field_name.strip().lower() == name and len(values) < MAX_FROM_FIELDS:
            current = [value]
    if current is not None:
        values.append(b" ".join(current).decode("utf-8", "replace"))
    return values



def domain_of(address: str) -> str:
    """The ASCII (A-label) domain of `address`, "" when it has no valid one."""
    local, at, domain = address.strip().rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not local or not domain or domain.startswith("["):
        return ""
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return ""
    return ascii_domain if "." in ascii_domain or ascii_domain.isalnum() else ""


def author_domains(message: bytes) -> tuple[tuple[str, ...], str]:
    """The distinct RFC5322.From domains (at most MAX_AUTHORS) and a problem text ("" when
    there is exactly one From field with one address)."""
    values = header_fields(message, b"from")
    if not values:
        return (), "no From header field"
    addresses = [addr for _, addr in getaddresses(values)]
    domains = tuple(dict.fromkeys(domain_of(a) for a in addresses if domain_of(a)))
    if not domains:
        return (), "no author address with a domain in From"
    if len(values) > 1:
        return domains[:MAX_AUTHORS], f"{len(values)} From header fields"
    if len(addresses) > 1:
        return domains[:MAX_AUTHORS], f"{len(addresses)} author addresses in From"
    return domains, ""


# -- discovery (RFC 7489 6.6.3) -----------------------------------------------------------

@dataclass(frozen=True)
class Discovery:
    """What policy discovery found for one author domain.

    Attributes:
        status: "found", "none" (no record: DMARC does not apply), "temperror" or
            "permerror" (several records, or an unusable one).
        record: the record when found.
        found_at: the domain whose `_dmarc` name held it.
        reason: for the log.
    """

    status: str
    record: DmarcRecord | None = None
    found_at: str = ""
    reason: str = ""


def _records(answers: TxtAnswer) -> tuple[list[DmarcRecord], list[str]]:
    """The DMARC records among TXT answers, and the errors of DMARC records unusable."""
    found: list[DmarcRecord] = []
    broken: list[str] = []
    for raw in answers:
        try:
            found.append(parse_record(raw.decode("utf-8", "replace")))
        except NotDmarcRecordError:
            continue
        except DmarcRecordError as exc:
            broken.append(str(exc))
    return found, broken


def _decide(domain: str, answers: TxtAnswer) -> Discovery | None:
    """The discovery outcome for the records at `_dmarc.<domain>`; None when none is a
    DMARC record (look further)."""
    found, broken = _records(answers)
    if len(found) + len(broken) > 1:
        return Discovery("permerror", found_at=domain, reason="several DMARC records")
    if broken:
        return Discovery("permerror", found_at=domain, reason=broken[0])
    if found:
        return Discovery("found", found[0], domain)
    return None


async def discover(author: str, lookup: Lookup) -> Discovery:
    """Find the DMARC policy for `author` (6.6.3): its own record, else its Organizational
    Domain's. `lookup(name)` gives the TXT records at `name` (() for none) and raises
    (any exception) when DNS gave no answer."""
    org = organizational_domain(author)
    for domain in dict.fromkeys((author, org)):
        try:
            answers = await lookup(f"_dmarc.{domain}")
        except Exception as exc:
            return Discovery("temperror", found_at=domain, reason=f"lookup failed: {exc}")
        decided = _decide(domain, answers)
        if decided is not None:
            return decided
    return Discovery("none", reason="no DMARC record")


# -- evaluation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Identifiers:
    """The authenticated identifiers DMARC aligns (RFC 7489 4.2).

    Attributes:
        spf: the SPF result; `spf_domain` the domain it is for (MAIL FROM, or HELO for the
            null sender).
        dkim: (result, d=) of each DKIM signature looked at.
    """

    spf: str = "none"
    spf_domain: str = ""
    dkim: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AuthorResult:
    """DMARC's outcome for one author domain.

    Attributes:
        domain: the RFC5322.From domain.
        result: pass, fail, none, temperror, permerror.
        policy: the policy the domain asks for this message (sp= for a subdomain), "" when
            there is no usable record.
        disposition: what to do: none, quarantine or reject (after pct=).
        reason: for the log.
    """

    domain: str
    result: str
    policy: str = ""
    disposition: str = "none"
    reason: str = ""

    @property
    def resinfo(self) -> str:
        """`dmarc=fail (p=reject dis=none) header.from=example.org` (RFC 7489 11.2)."""
        text = f"dmarc={self.result}"
        if self.policy:
            text += f" (p={self.policy} dis={self.disposition})"
        return text + (f" header.from={self.domain}" if self.domain else "")


def applicable_policy(author: str, found: Discovery) -> str:
    """p=, or sp= for an author below the Organizational Domain whose record it used."""
    record = found.record
    assert record is not None
    if author != found.found_at and record.subdomain_policy:
        return record.subdomain_policy
    return record.policy


def sampled_disposition(policy: str, pct: int, rng: random.Random) -> str:
    """RFC 7489 6.6.4: `policy` for `pct` percent of failing messages, else the next less
    strict one."""
    if pct >= 100 or policy == "none" or rng.random() * 100 < pct:
        return policy
    return POLICIES[POLICIES.index(policy) - 1]


def _alignment(author: str, record: DmarcRecord, ids: Identifiers) -> tuple[str, str]:
    """(result, reason) from the identifiers alone: pass, fail or temperror."""
    dkim_ok = [d for r, d in ids.dkim if r == "pass" and aligned(author, d, record.adkim)]
    if dkim_ok:
        return "pass", f"aligned DKIM d={dkim_ok[0]}"
    if ids.spf == "pass" and aligned(author, ids.spf_domain, record.aspf):
        return "pass", f"aligned SPF {ids.spf_domain}"
    if (ids.spf == "temperror" and aligned(author, ids.spf_domain, record.aspf)) or any(
            r == "temperror" and aligned(author, d, record.adkim) for r, d in ids.dkim):
        return "temperror", "an aligned identifier could not be checked"
    return "fail", "no aligned SPF or DKIM pass"


def evaluate(author: str, found: Discovery, ids: Identifiers,
             rng: random.Random) -> AuthorResult:
    """DMARC's result for one author domain (RFC 7489 6.6.2, 6.6.4)."""
    if found.status != "found" or found.record is None:
        return AuthorResult(author, found.status, reason=found.reason)
    policy = applicable_policy(author, found)
    result, reason = _alignment(author, found.record, ids)
    if result != "fail":
        return AuthorResult(author, result, policy, "none", reason)
    disposition = sampled_disposition(policy, found.record.pct, rng)
    if disposition != policy:
        reason += f", outside pct={found.record.pct}"
    return AuthorResult(author, "fail", policy, disposition, reason)


@dataclass(frozen=True)
class DmarcOutcome:
    """DMARC over all author domains: the worst result and the strictest disposition."""

    results: tuple[AuthorResult, ...] = field(default_factory=tuple)
    problem: str = ""

    @property
    def result(self) -> str:
        if not self.results:
            return "permerror"
        return max((r.result for r in self.results), key=RESULT_ORDER.index)

    @property
    def disposition(self) -> str:
        return max((r.disposition for r in self.results), key=POLICIES.index,
                   default="none")

    @property
    def policy(self) -> str:
        """The strictest published policy among the failing authors ("" if none failed)."""
        failing = [r.policy for r in self.results if r.result == "fail" and r.policy]
        return max(failing, key=POLICIES.index, default="")

    @property
    def resinfo(self) -> tuple[str, ...]:
        if not self.results:
            return (f"dmarc=permerror ({self.problem})" if self.problem
                    else "dmarc=permerror",)
        return tuple(r.resinfo for r in self.results)


@dataclass(frozen=True)
class Policies:
    """The author domains of a message and the policy discovery of each (in order)."""

    authors: tuple[str, ...]
    found: tuple[Discovery, ...]
    problem: str = ""


async def find_policies(message: bytes, lookup: Lookup) -> Policies:
    """Author domains (6.6.1) and their policies (6.6.3), all looked up at once; this needs
    no SPF or DKIM result, so it runs alongside them."""
    authors, problem = author_domains(message)
    found = await asyncio.gather(*(discover(author, lookup) for author in authors))
    return Policies(authors, tuple(found), problem)


def outcome(policies: Policies, ids: Identifiers, rng: random.Random) -> DmarcOutcome:
    """DMARC's outcome for every author domain, given the authenticated identifiers."""
    return DmarcOutcome(
        tuple(evaluate(author, found, ids, rng)
              for author, found in zip(policies.authors, policies.found, strict=True)),
        policies.problem)


async def check(message: bytes, ids: Identifiers, lookup: Lookup,
                rng: random.Random) -> DmarcOutcome:
    """Run DMARC on `message` for its author domains (discovery, alignment, pct)."""
    return outcome(await find_policies(message, lookup), ids, rng)


def identifiers(spf: str, spf_domain: str,
                dkim: Sequence[tuple[str, str]]) -> Identifiers:
    """Identifiers from plain values (lower-cased)."""
    return Identifiers(spf, spf_domain.lower().rstrip("."),
                       tuple((r, d.lower().rstrip(".")) for r, d in dkim))
