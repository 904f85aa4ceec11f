"""ARC sealing of forwarded mail by the outbound signer (appliance/dkim/arc_seal.py): which
messages get a set, with which domain's key and cv, and that our seal validates with our
own verifier (checks/arc.py) and dkimpy against the keys' published records."""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from appliance.checks.arc import verify_chain
from appliance.checks.auth_results import results_header
from appliance.dkim import keys
from appliance.dkim.arc_seal import (
    local_domains,
    newest_seal,
    sealing_domain,
    trace_recipient_domain,
)
from appliance.dkim.signer import DkimSigner
from appliance.smtp.policy import Trace, trace_headers
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from harness.arc_chain import Signer, dict_dns, plain_message, records, two_hop_chain

HOSTNAME = "mail.example.test"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arcseal")
    directory = SqliteDirectory(open_database(path))
    for domain in ("example.test", "lists.example.test"):
        directory.add_domain(domain)
        keys.ensure_keys(path, domain, datetime.date(2026, 11, 1))
    directory.add_domain("nokeys.example.test")
    return path


@pytest.fixture(scope="module")
def outside() -> dict[str, Signer]:
    return {"author": Signer("origin.example"), "hop1": Signer("fwd.example.com"),
            "hop2": Signer("lists.example.net")}


def our_records(data_dir: Path, *domains: str) -> dict[bytes, bytes]:
    table: dict[bytes, bytes] = {}
    for domain in domains:
        state = keys.load_state(data_dir, domain)
        assert state is not None
        for owner, value in keys.pair_records(data_dir, domain, state.active):
            table[(owner + ".").encode()] = value.encode()
    return table


def received_by_mx(message: bytes, resinfo: list[str], recipient: str | None,
                   sender: str = "alice@origin.example") -> bytes:
    """`message` as our MX queues it: trace fields, our Authentication-Results, the rest."""
    trace = trace_headers(Trace(sender, "mail.origin.example", "127.0.0.5", HOSTNAME,
                                "ESMTP", "Q1ARC", recipient, time.time()))
    header = results_header(HOSTNAME, resinfo).encode() + b"\r\n"
    return trace.replace(b"\n", b"\r\n") + header + message


def seal_tags(message: bytes) -> list[dict[str, str]]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.findall(r"^ARC-Seal:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M)
    return [{k.strip(): "".join(v.split()) for k, _, v in
             (tag.partition("=") for tag in field.split(";")) if k.strip()}
            for field in fields]


def test_forwarded_mail_is_sealed_by_the_alias_domain(data_dir: Path,
                                                      outside: dict[str, Signer]) -> None:
    signed = outside["author"].dkim_sign(plain_message())
    queued = received_by_mx(signed, ["dkim=pass header.d=origin.example", "arc=none"],
                            "fwd@lists.example.test")
    sent = DkimSigner(data_dir, HOSTNAME).sign("alice@origin.example", queued)
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example" not in sent
    [tags] = seal_tags(sent)
    assert (tags["i"], tags["cv"], tags["d"], tags["a"]) == (
        "1", "none", "lists.example.test", "rsa-sha256")
    assert b"ARC-Authentication-Results: i=1; mail.example.test;" in sent
    dns = dict_dns(records(outside["author"]) | our_records(data_dir, "lists.example.test"))
    outcome = verify_chain(sent, dns)
    assert (outcome.cv, outcome.sealers) == ("pass", ("lists.example.test",))
    assert dkim.arc_verify(sent, dnsfunc=dns)[0] == dkim.CV_Pass


def test_list_chain_is_extended_with_cv_pass(data_dir: Path,
                                             outside: dict[str, Signer]) -> None:
    chain = two_hop_chain(outside["author"], outside["hop1"], outside["hop2"])
    queued = received_by_mx(chain, ["dkim=fail header.d=origin.example",
                                    "arc=pass smtp.remote-ip=127.0.0.5"], "fwd@example.test")
    sent = DkimSigner(data_dir, HOSTNAME).sign("list-bounces@lists.example.net", queued)
    newest = seal_tags(sent)[0]
    assert (newest["i"], newest["cv"], newest["d"]) == ("3", "pass", "example.test")
    dns = dict_dns(records(*outside.values()) | our_records(data_dir, "example.test"))
    outcome = verify_chain(sent, dns)
    assert outcome.sealers == ("fwd.example.com", "lists.example.net", "example.test")


def test_broken_chain_is_sealed_with_cv_fail(data_dir: Path,
                                             outside: dict[str, Signer]) -> None:
    chain = two_hop_chain(outside["author"], outside["hop1"], outside["hop2"])
    queued = received_by_mx(chain + b"changed\r\n", ["arc=fail"], "fwd@example.test")
    sent = DkimSigner(data_dir, HOSTNAME).sign("x@lists.example.net", queued)
    newest = seal_tags(sent)[0]
    assert (newest["i"], newest["cv"]) == ("3", "fail")
    dns = dict_dns(records(*outside.values()) | our_records(data_dir, "example.test"))
    assert verify_chain(sent, dns).cv == "fail"


@pytest.mark.parametrize("sender", ["alice@example.test", "bob@NoKeys.Example.Test", ""])
def test_our_own_mail_and_bounces_are_not_sealed(data_dir: Path, sender: str) -> None:
    queued = received_by_mx(plain_message(sender="alice@example.test"), ["arc=none"],
                            "x@peer.example")
    assert b"ARC-Seal" not in DkimSigner(data_dir, HOSTNAME).sign(sender, queued)


def test_no_results_of_ours_means_no_seal(data_dir: Path) -> None:
    queued = b"Authentication-Results: other.example; arc=none\r\n" + plain_message()
    assert DkimSigner(data_dir, HOSTNAME).sign("a@origin.example", queued) == queued


def test_a_chain_behind_us_without_our_arc_result_is_not_sealed(
        data_dir: Path, outside: dict[str, Signer]) -> None:
    chain = two_hop_chain(outside["author"], outside["hop1"], outside["hop2"])
    queued = received_by_mx(chain, ["dkim=fail header.d=origin.example"], "f@example.test")
    assert DkimSigner(data_dir, HOSTNAME).sign("x@lists.example.net", queued) == queued


def test_terminated_chain_is_not_sealed_again(data_dir: Path) -> None:
    queued = received_by_mx(b"ARC-Seal: i=2; cv=fail; d=x.example; s=s; b=AA\r\n"
                            + plain_message(), ["arc=fail"], "f@example.test")
    assert DkimSigner(data_dir, HOSTNAME).sign("x@lists.example.net", queued) == queued


def test_fiftieth_set_is_the_last(data_dir: Path) -> None:
    queued = received_by_mx(b"ARC-Seal: i=50; cv=pass; d=x.example; s=s; b=AA\r\n"
                            + plain_message(), ["arc=pass"], "f@example.test")
    assert DkimSigner(data_dir, HOSTNAME).sign("x@lists.example.net", queued) == queued


def test_no_database_no_seal(tmp_path: Path) -> None:
    keys.ensure_keys(tmp_path, "example.test", datetime.date(2026, 11, 1))
    queued = received_by_mx(plain_message(), ["arc=none"], "f@example.test")
    assert DkimSigner(tmp_path, HOSTNAME).sign("a@origin.example", queued) == queued
    assert not (tmp_path / "mailstead.db").exists()


def test_local_domains(data_dir: Path, tmp_path: Path) -> None:
    assert local_domains(data_dir) == ["example.test", "lists.example.test",
                                       "nokeys.example.test"]
    assert local_domains(tmp_path) == []


def test_sealing_domain_choice(data_dir: Path) -> None:
    domains = ["a.test", "example.test", "z.test"]
    with_keys = {"a.test", "example.test"}.__contains__
    many = received_by_mx(plain_message(), [], None)
    assert sealing_domain(many, HOSTNAME, domains, with_keys) == "example.test"
    one = received_by_mx(plain_message(), [], "x@A.test")
    assert sealing_domain(one, HOSTNAME, domains, with_keys) == "a.test"
    keyless = received_by_mx(plain_message(), [], "x@z.test")
    assert sealing_domain(keyless, HOSTNAME, domains, with_keys) == "example.test"
    assert sealing_domain(many, "mx.elsewhere.test", domains, with_keys) == "a.test"
    assert sealing_domain(many, HOSTNAME, domains, lambda d: False) is None


def test_trace_recipient_only_from_our_topmost_received() -> None:
    ours = received_by_mx(plain_message(), [], "x@a.test")
    assert trace_recipient_domain(ours, HOSTNAME) == "a.test"
    assert trace_recipient_domain(ours, "other.test") is None
    theirs = (b"Received: from x by mx.peer.example with ESMTP for <y@b.test>;\r\n"
              b"\tFri, 27 Nov 2026 12:00:00 +0000\r\n") + ours
    assert trace_recipient_domain(theirs, HOSTNAME) is None
    assert trace_recipient_domain(plain_message(), HOSTNAME) is None


def test_newest_seal() -> None:
    assert newest_seal(plain_message()) == (0, "")
    message = (b"ARC-Seal: i=1; cv=none; d=a\r\nARC-Seal: i=3;\r\n cv=Fail; d=b\r\n"
               b"arc-seal: cv=pass; i=2\r\n\r\nARC-Seal: i=9; cv=pass\r\n")
    assert newest_seal(message) == (3, "fail")
