"""Fuzz ARC validation and sealing: any message gives cv none/pass/fail (never an exception,
never a pass without a whole, verified chain), and the outbound sealer gives the message
sealed or unchanged (an exception would defer forwarded mail until it bounces)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.checks.arc import structure_problem, verify_chain
from appliance.checks.auth_dns import DnsFunc
from appliance.checks.auth_results import results_header
from appliance.dkim import keys
from appliance.dkim.arc_seal import newest_seal, trace_recipient_domain
from appliance.dkim.signer import DkimSigner
from appliance.smtp.policy import Trace, trace_headers
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from harness.arc_chain import Signer, dict_dns, records, two_hop_chain

HOSTNAME = "mail.example.test"
FIELD_NAMES = [b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results",
               b"arc-seal ", b"Authentication-Results", b"DKIM-Signature", b"From"]
VALUES = st.one_of(
    st.builds(lambda i, rest: b" i=" + str(i).encode() + b"; " + rest,
              st.integers(-2, 70), st.binary(max_size=60)),
    st.sampled_from([b" i=1; cv=none; a=rsa-sha256; d=x.example; s=s; b=AA",
                     b" i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AA; b=AA",
                     b" i=1; x.example; dkim=pass", b" i = 1 ; cv=pass", b"",
                     b" i=99999999999999", b" \xff\xfe", b" i=1;\r\n folded; b=\r\n\tAA"]),
    st.binary(max_size=80))
FIELDS = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), VALUES), max_size=20)


def no_keys(name: bytes, timeout: float = 5.0) -> bytes | None:
    return None


@pytest.fixture(scope="module")
def real_chain() -> tuple[bytes, DnsFunc]:
    signers = [Signer("origin.example"), Signer("fwd.example"), Signer("lists.example")]
    return two_hop_chain(*signers), dict_dns(records(*signers))


@settings(max_examples=300, deadline=None)
@given(FIELDS, st.sampled_from([b"\r\n", b"\n"]), st.binary(max_size=100))
@example([(b"ARC-Seal", b" i=1; cv=none")] * 3, b"\r\n", b"")
@example([(b" folded", b"x"), (b"ARC-Seal", b" i=1")], b"\r\n", b"")
def test_verify_any_header_block(fields: list[tuple[bytes, bytes]], newline: bytes,
                                 body: bytes) -> None:
    head = newline.join(name + b":" + value for name, value in fields)
    outcome = verify_chain(head + newline + newline + body, no_keys)
    assert outcome.cv in ("none", "fail")          # no key anywhere: never a pass
    assert outcome.resinfo == f"arc={outcome.cv}"
    assert outcome.sealers == ()
    assert isinstance(structure_problem(fields), str)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_real_chain(real_chain: tuple[bytes, DnsFunc], data: st.DataObject) -> None:
    chain, dns = real_chain
    head_end = chain.index(b"\r\n\r\n")
    at = data.draw(st.integers(0, head_end - 1))
    cut = data.draw(st.integers(0, 8))
    insert = data.draw(st.binary(max_size=8))
    mutated = chain[:at] + insert + chain[at + cut:]
    outcome = verify_chain(mutated, dns)
    assert outcome.cv in ("none", "pass", "fail")
    if outcome.cv == "pass":        # only harmless edits (relaxed canonicalisation) survive
        assert outcome.sealers == ("fwd.example", "lists.example")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_verify_any_bytes(raw: bytes) -> None:
    assert verify_chain(raw, no_keys).cv in ("none", "fail")
    assert newest_seal(raw)[0] >= 0
    domain = trace_recipient_domain(raw, HOSTNAME)
    assert domain is None or domain == domain.lower()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> DkimSigner:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-arc")
    SqliteDirectory(open_database(data_dir)).add_domain("example.test")
    keys.ensure_keys(data_dir, "example.test", datetime.date(2026, 11, 1))
    return DkimSigner(data_dir, HOSTNAME)


LINES = st.lists(st.sampled_from([
    b"From: a@origin.example", b"To: fwd@example.test", b"Subject: \xff\xfe", b" folded",
    b"no colon here", b"ARC-Seal: i=1; cv=none; d=x.example", b"ARC-Seal: i=50; cv=pass",
    b"ARC-Seal: i=2; cv=fail", b"Authentication-Results: mail.example.test; arc=pass",
    b"Authentication-Results: mail.example.test; arc=none; arc=fail",
    b"Authentication-Results: mail.example.test; \xff", b"Authentication-Results: x; y",
    b"X-Long: " + b"y" * 300, b"",
]), max_size=10)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES, st.booleans(), st.binary(max_size=200))
@example([b"From: a@origin.example"], True, b"body")
@example([b" folded", b"From: a@origin.example"], True, b"")
def test_seal_gives_sealed_or_unchanged(signer: DkimSigner, lines: list[bytes],
                                        ours: bool, body: bytes) -> None:
    content = b"\r\n".join(lines) + b"\r\n\r\n" + body
    if ours:     # our MX's trace and results in front, as the queue holds them
        trace = trace_headers(Trace("a@origin.example", "h", "127.0.0.1", HOSTNAME, "ESMTP",
                                    "Q1", "fwd@example.test", time.time()))
        content = (trace.replace(b"\n", b"\r\n")
                   + results_header(HOSTNAME, ["arc=none"]).encode() + b"\r\n" + content)
    out = signer.sign("a@origin.example", content)
    assert out == content or (out.startswith(b"ARC-Seal: ") and out.endswith(content))
