"""TLS-RPT report JSON (RFC 8460 4.3 and 4.4) to `TlsReport` (pure).

Required fields (4.3): organization-name, date-range, contact-info, report-id, policies
with policy and summary. `mx-host` is a list in the RFC's grammar but a single string in its
own example (4.4), and senders do both: either is accepted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from appliance.reports import fields
from appliance.reports.model import (
    DEFAULT_LIMITS,
    Limits,
    ReportError,
    TlsFailure,
    TlsPolicy,
    TlsReport,
)

MAX_POLICIES = 1000


def parse_tlsrpt(data: bytes, limits: Limits = DEFAULT_LIMITS) -> TlsReport:
    """Parse one TLS-RPT JSON document.

    Raises:
        ReportError: not JSON, not an object, or a required field is missing or malformed.
    """
    if len(data) > limits.max_uncompressed:
        raise ReportError(f"JSON larger than {limits.max_uncompressed} bytes")
    try:
        document = json.loads(data)
    except RecursionError:
        raise ReportError("JSON nested too deeply") from None
    except ValueError as exc:    # JSONDecodeError, UnicodeDecodeError, huge integers
        raise ReportError(f"malformed JSON: {str(exc)[:120]}") from None
    root = _object(document, "report")
    dates = _object(root.get("date-range"), "date-range")
    policies = _list(root.get("policies"), "policies", MAX_POLICIES)
    if not policies:
        raise ReportError("policies is empty")
    begin, end = fields.date_range(_datetime(dates.get("start-datetime"), "start-datetime"),
                                   _datetime(dates.get("end-datetime"), "end-datetime"))
    budget = [limits.max_rows]
    return TlsReport(
        org_name=fields.text(root.get("organization-name"), "organization-name"),
        contact=fields.text(root.get("contact-info"), "contact-info", required=False),
        report_id=fields.text(root.get("report-id"), "report-id"),
        begin=begin, end=end,
        policies=tuple(_policy(p, budget) for p in policies))


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{name} is not a JSON object")
    return value


def _list(value: object, name: str, most: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportError(f"{name} is not a JSON array")
    if len(value) > most:
        raise ReportError(f"{name} has more than {most} entries")
    return value


def _strings(value: object, name: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else _list(value, name, 256)
    return tuple(fields.text(v, name) for v in items)


def _datetime(value: object, name: str) -> int:
    """An RFC 3339 date-time (RFC 8460 4.3) as POSIX seconds; no zone means UTC."""
    raw = fields.text(value, name, max_text=64)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ReportError(f"{name} {raw!r} is not an RFC 3339 date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int(when.timestamp())
    if not 0 <= seconds <= fields.MAX_COUNT:
        raise ReportError(f"{name} {raw!r} is out of range")
    return seconds


def _policy(value: object, budget: list[int]) -> TlsPolicy:
    entry = _object(value, "policies entry")
    policy = _object(entry.get("policy"), "policy")
    summary = _object(entry.get("summary"), "summary")
    details = _list(entry.get("failure-details"), "failure-details", budget[0])
    budget[0] -= len(details)
    return TlsPolicy(
        policy_type=fields.text(policy.get("policy-type"), "policy-type", lower=True),
        policy_domain=fields.domain(policy.get("policy-domain"), "policy-domain"),
        policy_strings=_strings(policy.get("policy-string"), "policy-string"),
        mx_hosts=_strings(policy.get("mx-host"), "mx-host"),
        successful=fields.count(summary.get("total-successful-session-count"),
                                "total-successful-session-count"),
        failed=fields.count(summary.get("total-failure-session-count"),
                            "total-failure-session-count"),
        failures=tuple(_failure(d) for d in details))


def _failure(value: object) -> TlsFailure:
    entry = _object(value, "failure-details entry")
    return TlsFailure(
        result_type=fields.text(entry.get("result-type"), "result-type", lower=True),
        failed_sessions=fields.count(entry.get("failed-session-count"),
                                     "failed-session-count"),
        sending_mta_ip=fields.ip(entry.get("sending-mta-ip"), "sending-mta-ip",
                                 required=False),
        receiving_mx_hostname=fields.text(entry.get("receiving-mx-hostname"),
                                          "receiving-mx-hostname", required=False, lower=True),
        receiving_mx_helo=fields.text(entry.get("receiving-mx-helo"), "receiving-mx-helo",
                                      required=False),
        receiving_ip=fields.ip(entry.get("receiving-ip"), "receiving-ip", required=False),
        additional_information=fields.text(entry.get("additional-information"),
                                           "additional-information", required=False),
        failure_reason_code=fields.text(entry.get("failure-reason-code"),
                                        "failure-reason-code", required=False))
