"""DMARC aggregate report XML (RFC 7489 7.2.1.1 and appendix C) to `DmarcReport` (pure).

The schema's required elements are required here too; optional ones default to "". A
report in the DMARCbis namespace reads the same (namespaces are dropped by `xmlsafe`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # Element type only; parsing is xmlsafe's

from appliance.reports import fields
from appliance.reports.model import (
    DEFAULT_LIMITS,
    DkimAuth,
    DmarcRecord,
    DmarcReport,
    Limits,
    PolicyPublished,
    ReportError,
    SpfAuth,
)
from appliance.reports.xmlsafe import parse_xml


def parse_dmarc(data: bytes, limits: Limits = DEFAULT_LIMITS) -> DmarcReport:
    """Parse one aggregate report document.

    Raises:
        ReportError: not XML, not a `feedback` document, or a required field is missing or
            malformed.
    """
    root = parse_xml(data, limits)
    if root.tag != "feedback":
        raise ReportError(f"root element is {root.tag[:64]!r}, not feedback")
    meta = _child(root, "report_metadata")
    dates = _child(meta, "date_range")
    begin, end = fields.date_range(fields.count(_value(dates, "begin"), "date_range/begin"),
                                   fields.count(_value(dates, "end"), "date_range/end"))
    records = root.findall("record")
    if len(records) > limits.max_rows:
        raise ReportError(f"more than {limits.max_rows} records")
    return DmarcReport(
        org_name=fields.text(_value(meta, "org_name"), "org_name"),
        email=fields.text(_value(meta, "email"), "email", required=False),
        report_id=fields.text(_value(meta, "report_id"), "report_id"),
        begin=begin, end=end,
        policy=_policy(_child(root, "policy_published")),
        records=tuple(_record(r) for r in records),
        extra_contact=fields.text(_value(meta, "extra_contact_info"), "extra_contact_info",
                                  required=False),
        errors=tuple(fields.text(e.text, "error", required=False)
                     for e in meta.findall("error"))[:16])


def _child(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.find(tag)
    if found is None:
        raise ReportError(f"{tag} is missing")
    return found


def _value(parent: ET.Element | None, tag: str) -> str | None:
    """The text of `parent`'s child `tag` ("" for an empty element), None when absent."""
    if parent is None:
        return None
    found = parent.find(tag)
    return None if found is None else (found.text or "")


def _policy(element: ET.Element) -> PolicyPublished:
    pct = _value(element, "pct")
    return PolicyPublished(
        domain=fields.domain(_value(element, "domain"), "policy_published/domain"),
        p=fields.text(_value(element, "p"), "policy_published/p", lower=True),
        sp=fields.text(_value(element, "sp"), "sp", required=False, lower=True),
        adkim=fields.text(_value(element, "adkim"), "adkim", required=False, lower=True),
        aspf=fields.text(_value(element, "aspf"), "aspf", required=False, lower=True),
        pct=fields.count(pct, "pct") if pct and pct.strip() else None,
        fo=fields.text(_value(element, "fo"), "fo", required=False))


def _record(element: ET.Element) -> DmarcRecord:
    row = _child(element, "row")
    evaluated = _child(row, "policy_evaluated")
    ids = _child(element, "identifiers")
    auth = element.find("auth_results")
    found = auth if auth is not None else ET.Element("auth_results")
    return DmarcRecord(
        source_ip=fields.ip(_value(row, "source_ip"), "source_ip"),
        count=fields.count(_value(row, "count"), "count"),
        disposition=fields.text(_value(evaluated, "disposition"), "disposition", lower=True),
        dkim=fields.text(_value(evaluated, "dkim"), "policy_evaluated/dkim", lower=True),
        spf=fields.text(_value(evaluated, "spf"), "policy_evaluated/spf", lower=True),
        header_from=fields.text(_value(ids, "header_from"), "header_from", lower=True),
        envelope_from=fields.text(_value(ids, "envelope_from"), "envelope_from",
                                  required=False, lower=True),
        envelope_to=fields.text(_value(ids, "envelope_to"), "envelope_to", required=False,
                                lower=True),
        reasons=tuple(_reason(r) for r in evaluated.findall("reason"))[:16],
        dkim_results=tuple(_dkim(d) for d in found.findall("dkim"))[:32],
        spf_results=tuple(_spf(s) for s in found.findall("spf"))[:32])


def _reason(element: ET.Element) -> tuple[str, str]:
    return (fields.text(_value(element, "type"), "reason/type", lower=True),
            fields.text(_value(element, "comment"), "reason/comment", required=False))


def _dkim(element: ET.Element) -> DkimAuth:
    return DkimAuth(
        domain=fields.text(_value(element, "domain"), "dkim/domain", required=False,
                           lower=True),
        selector=fields.text(_value(element, "selector"), "dkim/selector", required=False),
        result=fields.text(_value(element, "result"), "dkim/result", lower=True))


def _spf(element: ET.Element) -> SpfAuth:
    return SpfAuth(
        domain=fields.text(_value(element, "domain"), "spf/domain", required=False,
                           lower=True),
        scope=fields.text(_value(element, "scope"), "spf/scope", required=False, lower=True),
        result=fields.text(_value(element, "result"), "spf/result", lower=True))
