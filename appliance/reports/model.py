"""The parsed reports as plain frozen dataclasses, the limits on untrusted input, ReportError.

Field names follow the report formats: RFC 7489 appendix C (DMARC aggregate XML) and
RFC 8460 4.4 (TLS-RPT JSON). Times are POSIX seconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass


class ReportError(ValueError):
    """The input is not a report we accept; the message says why (for the log)."""


@dataclass(frozen=True)
class Limits:
    """Every limit on untrusted report input, by name."""

    max_uncompressed: int = 20 * 1024 * 1024   # bytes after gunzip/unzip, and of raw XML/JSON
    max_zip_members: int = 8                   # entries in a .zip (reports carry one)
    max_parts: int = 64                        # MIME parts looked at in one message
    max_depth: int = 16                        # XML elements (JSON: the recursion limit)
    max_rows: int = 100_000                    # DMARC records, TLS-RPT failure details
    max_text: int = 1024                       # characters in one text field


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class DkimAuth:
    """One `auth_results/dkim` entry: what the reporter's DKIM verification found."""

    domain: str
    selector: str
    result: str           # none, pass, fail, policy, neutral, temperror, permerror


@dataclass(frozen=True)
class SpfAuth:
    """One `auth_results/spf` entry."""

    domain: str
    scope: str            # helo or mfrom ("" when the reporter left it out)
    result: str           # none, neutral, pass, fail, softfail, temperror, permerror


@dataclass(frozen=True)
class DmarcRecord:
    """One `record`: messages from one source IP with the same evaluation."""

    source_ip: str
    count: int
    disposition: str      # none, quarantine, reject
    dkim: str             # DMARC-aligned DKIM: pass or fail
    spf: str              # DMARC-aligned SPF: pass or fail
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple[tuple[str, str], ...] = ()    # (type, comment): local policy overrides
    dkim_results: tuple[DkimAuth, ...] = ()
    spf_results: tuple[SpfAuth, ...] = ()

    @property
    def passed(self) -> bool:
        """DMARC passes when aligned DKIM or aligned SPF passes (RFC 7489 6.6.2)."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True)
class PolicyPublished:
    """The DMARC record the reporter found for the domain (`policy_published`)."""

    domain: str
    p: str
    sp: str = ""
    adkim: str = ""
    aspf: str = ""
    pct: int | None = None
    fo: str = ""


@dataclass(frozen=True)
class DmarcReport:
    """A DMARC aggregate report (RFC 7489 7.2.1.1)."""

    org_name: str
    email: str
    report_id: str
    begin: int
    end: int
    policy: PolicyPublished
    records: tuple[DmarcRecord, ...]
    extra_contact: str = ""
    errors: tuple[str, ...] = ()

    kind = "dmarc"

    @property
    def domain(self) -> str:
        return self.policy.domain

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.records)

    @property
    def failed(self) -> int:
        return sum(r.count for r in self.records if not r.passed)


@dataclass(frozen=True)
class TlsFailure:
    """One `failure-details` entry (RFC 8460 4.3)."""

    result_type: str
    failed_sessions: int
    sending_mta_ip: str = ""
    receiving_mx_hostname: str = ""
    receiving_mx_helo: str = ""
    receiving_ip: str = ""
    additional_information: str = ""
    failure_reason_code: str = ""


@dataclass(frozen=True)
class TlsPolicy:
    """One entry of `policies`: the policy applied, session counts, failures."""

    policy_type: str          # tlsa, sts or no-policy-found
    policy_domain: str
    policy_strings: tuple[str, ...]
    mx_hosts: tuple[str, ...]
    successful: int
    failed: int
    failures: tuple[TlsFailure, ...] = ()


@dataclass(frozen=True)
class TlsReport:
    """A TLS-RPT report (RFC 8460 4)."""

    org_name: str
    contact: str
    report_id: str
    begin: int
    end: int
    policies: tuple[TlsPolicy, ...]

    kind = "tlsrpt"

    @property
    def domain(self) -> str:
        return self.policies[0].policy_domain if self.policies else ""

    @property
    def messages(self) -> int:
        return sum(p.successful + p.failed for p in self.policies)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.policies)


Report = DmarcReport | TlsReport
