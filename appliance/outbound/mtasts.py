"""MTA-STS (RFC 8461), the pure part: TXT records, policy files, MX patterns, cache rules.

Fetching (HTTPS, DNS) lives in `mtasts_fetch.py`. A policy says whether a domain's MX hosts
must be reached over TLS with a verified certificate (`enforce`), should be and are only
logged otherwise (`testing`), or asks nothing (`none`).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_AGE_LIMIT = 31_557_600       # RFC 8461 3.2: at most one year
MAX_POLICY_BYTES = 64 * 1024     # RFC 8461 3.3: senders may limit the body to 64 KB
MAX_MX_PATTERNS = 100            # a bound on what a hostile policy can make us keep

# RFC 8461 3.1:  sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
#   sts-version = %s"v=STSv1"    sts-id = %s"id=" 1*32(ALPHA / DIGIT)
#   sts-field-delim = *WSP ";" *WSP  (errata 6285: records start with "v=STSv1;")
#   sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
#   sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)   ; chars except "=", ";", SP and CTLs
_TXT_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=([\x21-\x3a\x3c\x3e-\x7e]+)")
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
# RFC 8461 3.2:  sts-policy-field-delim = ":" *WSP;  sts-policy-mx-value = ["*."] Domain
_POLICY_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_MX_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


class PolicyError(ValueError):
    """A TXT record or policy file that RFC 8461 says to treat as absent."""


class Mode(enum.Enum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class Policy:
    """A fetched policy, with the TXT id it was fetched for and when (Unix seconds)."""

    mode: Mode
    max_age: int
    mx: tuple[str, ...]
    policy_id: str = ""
    fetched_at: float = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.fetched_at + self.max_age

    def allows(self, host: str) -> bool:
        """Whether MX `host` matches one of the policy's `mx` patterns (RFC 8461 4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)

    def to_json(self) -> str:
        return json.dumps({"mode": self.mode.value, "max_age": self.max_age,
                           "mx": list(self.mx), "id": self.policy_id,
                           "fetched_at": self.fetched_at}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        """Read a cached policy back (Raises: PolicyError for anything malformed)."""
        try:
            data = json.loads(text)
            policy = cls(Mode(data["mode"]), int(data["max_age"]),
                         tuple(str(m) for m in data["mx"]), str(data["id"]),
                         float(data["fetched_at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PolicyError(f"unreadable cached policy: {exc}") from exc
        if not 0 <= policy.max_age <= MAX_AGE_LIMIT:
            raise PolicyError("cached policy has an impossible max_age")
        return policy


def parse_txt(records: Iterable[str]) -> str:
    """The policy id from the `_mta-sts` TXT records (each already joined from its strings).

    Raises:
        PolicyError: not exactly one record starting with "v=STSv1;", or a malformed one.
    """
    candidates = [r for r in records if r.startswith("v=STSv1;")]
    if len(candidates) != 1:
        raise PolicyError(f"{len(candidates)} TXT records start with v=STSv1; (need one)")
    fields: dict[str, str] = {}
    for part in candidates[0].split(";")[1:]:
        part = part.strip(" \t")
        if not part:
            continue
        match = _TXT_FIELD.fullmatch(part)
        if match is None:
            raise PolicyError(f"malformed TXT field {part[:40]!r}")
        fields.setdefault(match.group(1), match.group(2))
    policy_id = fields.get("id", "")
    if not _STS_ID.fullmatch(policy_id):
        raise PolicyError("TXT record without a valid id= (1 to 32 letters and digits)")
    return policy_id


def parse_policy(text: str, *, policy_id: str = "", fetched_at: float = 0.0) -> Policy:
    """Parse a policy file (RFC 8461 3.2). Unknown fields are ignored; for fields other than
    `mx` the first occurrence counts; `max_age` above one year is cut to one year.

    Raises:
        PolicyError: a missing or invalid version, mode or max_age, or no mx with a mode
            that needs one.
    """
    fields: dict[str, str] = {}
    patterns: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _POLICY_LINE.fullmatch(line)
        if match is None:
            if line.strip():
                raise PolicyError(f"malformed policy line {line[:40]!r}")
            continue
        key, value = match.groups()
        if key == "mx":
            patterns.append(_mx_pattern(value))
        else:
            fields.setdefault(key, value)
    return _policy(fields, patterns, policy_id, fetched_at)


def _policy(fields: dict[str, str], patterns: list[str], policy_id: str,
            fetched_at: float) -> Policy:
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    try:
        mode = Mode(fields.get("mode", ""))
    except ValueError:
        raise PolicyError(f"unknown policy mode {fields.get('mode', '')[:20]!r}") from None
    max_age = fields.get("max_age", "")
    if not max_age.isascii() or not max_age.isdigit() or len(max_age) > 10:
        raise PolicyError("max_age is not a number of seconds")
    if mode is not Mode.NONE and not patterns:
        raise PolicyError(f"a {mode.value} policy needs at least one mx")
    if len(patterns) > MAX_MX_PATTERNS:
        raise PolicyError(f"more than {MAX_MX_PATTERNS} mx patterns")
    return Policy(mode, min(int(max_age), MAX_AGE_LIMIT), tuple(patterns), policy_id,
                  fetched_at)


def _mx_pattern(value: str) -> str:
    pattern = value.lower().rstrip(".")
    if not _MX_PATTERN.fullmatch(pattern):
        raise PolicyError(f"invalid mx pattern {value[:60]!r}")
    return pattern


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: an exact name, or "*." matching exactly one left-most label."""
    name = host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = name.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return name == pattern


def needs_fetch(cached: Policy | None, txt_id: str | None, now: float) -> bool:
    """RFC 8461 5.1: fetch when the TXT id is new or the cached policy has expired.

    Without a TXT record (`txt_id` None) a cached policy stays in force until it expires,
    and nothing is fetched.
    """
    if txt_id is None:
        return False
    return cached is None or cached.policy_id != txt_id or cached.expired(now)


def usable(cached: Policy | None, now: float) -> Policy | None:
    """The cached policy if it may still be applied (not expired), else None."""
    return cached if cached is not None and not cached.expired(now) else None
