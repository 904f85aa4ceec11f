"""Fuzz the sending side of our DMARC aggregate reports (reports/sender.py, evaluations.py):
any rua= text gives destinations or nothing, any TXT answer to the external-destination
lookup gives a defined verdict, and names a sender chose (HELO, DKIM d= and s=) with any
characters still give a report our own parser reads back."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.checks.dkim_verify import DkimResult
from appliance.checks.dmarc import AuthorResult, Discovery, DmarcOutcome, Policies, parse_record
from appliance.checks.result import Verdict
from appliance.checks.spf import SpfOutcome
from appliance.reports.aggregate import to_xml
from appliance.reports.dmarc import parse_dmarc
from appliance.reports.evaluations import MAX_TEXT, Message, from_check
from appliance.reports.sender import (
    MAX_DESTINATIONS,
    Destination,
    build_report,
    destinations,
    parse_uri,
    verify,
)

RECORD = parse_record("v=DMARC1; p=reject; rua=mailto:d@example.org")


@given(st.text(max_size=200))
def test_any_rua_text_gives_destinations_or_nothing(text: str) -> None:
    found = parse_uri(text)
    assert found is None or ("@" in found.address and found.limit >= 0)
    listed = destinations(text)
    assert len(listed) <= MAX_DESTINATIONS
    assert len(set(listed)) == len(listed)


@given(st.lists(st.binary(max_size=300), max_size=4))
def test_any_report_record_answer_gives_a_verdict(answers: list[bytes]) -> None:
    async def txt(name: str) -> tuple[bytes, ...]:
        assert name == "example.org._report._dmarc.reports.test"
        return tuple(answers)

    status, targets = asyncio.run(verify("example.org", Destination("d@reports.test"), txt))
    assert status in ("ok", "refused")
    assert (status == "ok") == bool(targets)
    assert all(isinstance(t, Destination) for t in targets)


@settings(max_examples=200)
@given(helo=st.text(max_size=400), selector=st.text(max_size=400),
       dkim_domain=st.text(max_size=100))
def test_names_the_sender_chose_still_give_a_readable_report(
        helo: str, selector: str, dkim_domain: str) -> None:
    spf = SpfOutcome("pass", helo, "helo", "")
    dkim = (DkimResult("fail", dkim_domain or "x", selector),)
    outcome = DmarcOutcome((AuthorResult("example.org", "fail", "reject", "reject"),))
    rows = from_check(Policies(("example.org",), (Discovery("found", RECORD, "example.org"),)),
                      outcome, Message("192.0.2.1", "", spf, dkim, Verdict.REJECT, ""),
                      1_700_000_000)
    (row,) = rows
    assert len(row.spf_domain) <= MAX_TEXT
    assert all(len(part) <= MAX_TEXT for part in row.dkim[0][:2])
    report = build_report("example.org", row.day, rows, "mx.example.net",
                          "postmaster@example.net", 1)
    assert parse_dmarc(to_xml(report)).records[0].count == 1
