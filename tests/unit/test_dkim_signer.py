"""The outbound DKIM signer: who gets signed, with what, and that dkimpy verifies it."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from appliance.dkim import keys
from appliance.dkim.signer import DkimSigner, from_domain, header_names

HOSTNAME = "mail.example.test"
MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@peer.test>\r\n"
           b"Cc: carol@peer.test\r\nSubject: hello\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
           b"Message-ID: <1@example.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=us-ascii\r\nX-Mailer: test\r\n\r\n"
           b"Hello Bob.\r\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim")
    keys.ensure_keys(path, "example.test", datetime.date(2026, 11, 1))
    return path


def dns_for(data_dir: Path, domain: str = "example.test") -> dict[str, bytes]:
    state = keys.load_state(data_dir, domain)
    assert state is not None
    pairs = [state.active] + ([state.pending] if state.pending else [])
    return {owner + ".": value.encode() for pair in pairs
            for owner, value in keys.pair_records(data_dir, domain, pair)}


def verify_all(signed: bytes, records: dict[str, bytes]) -> list[bool]:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode(), b"")
    checker = dkim.DKIM(signed)
    count = signed.split(b"\r\n\r\n", 1)[0].count(b"DKIM-Signature:")
    return [_verify_one(checker, index, dnsfunc) for index in range(count)]


def _verify_one(checker: dkim.DKIM, index: int, dnsfunc: object) -> bool:
    try:
        return bool(checker.verify(index, dnsfunc=dnsfunc))
    except dkim.DKIMException:     # dkimpy raises for a body hash mismatch
        return False


def signature_tags(signed: bytes) -> list[dict[str, str]]:
    head = signed.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.findall(r"^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M)
    return [{k.strip(): "".join(v.split()) for k, _, v in
             (tag.partition("=") for tag in field.split(";")) if k.strip()}
            for field in fields]


def test_local_from_gets_rsa_and_ed25519_signatures_that_verify(data_dir: Path) -> None:
    signed = DkimSigner(data_dir, HOSTNAME).sign("alice@example.test", MESSAGE)
    assert signed.endswith(MESSAGE)
    tags = signature_tags(signed)
    assert [t["a"] for t in tags] == ["rsa-sha256", "ed25519-sha256"]
    assert [t["s"] for t in tags] == ["ms202611r", "ms202611e"]
    for tag in tags:
        assert tag["d"] == "example.test"
        assert tag["c"] == "relaxed/relaxed"
        assert "l" not in tag
        # the usual set, present fields only, From signed once more than it occurs
        assert tag["h"].split(":") == ["from", "to", "cc", "subject", "date", "message-id",
                                       "mime-version", "content-type", "from"]
    assert verify_all(signed, dns_for(data_dir)) == [True, True]


def test_changed_body_or_added_from_fails(data_dir: Path) -> None:
    signed = DkimSigner(data_dir, HOSTNAME).sign("alice@example.test", MESSAGE)
    records = dns_for(data_dir)
    assert verify_all(signed.replace(b"Hello Bob.", b"Hello Eve."), records) == [False, False]
    head, body = signed.split(b"\r\n\r\n", 1)
    forged = head + b"\r\nFrom: mallory@example.test\r\n\r\n" + body
    assert verify_all(forged, records) == [False, False]


def test_other_domains_pass_unsigned(data_dir: Path) -> None:
    signer = DkimSigner(data_dir, HOSTNAME)
    forwarded = MESSAGE.replace(b"alice@example.test", b"dave@elsewhere.test")
    # a forwarded message keeps its foreign From even if the envelope sender is local
    assert signer.sign("alice@example.test", forwarded) == forwarded
    assert signer.sign("dave@elsewhere.test", forwarded) == forwarded
    # no single From address: nothing to align with, so no signature
    two = MESSAGE.replace(b"From: Alice <alice@example.test>",
                          b"From: alice@example.test, bob@example.test")
    assert signer.sign("alice@example.test", two) == two
    doubled = b"From: alice@example.test\r\n" + MESSAGE
    assert signer.sign("alice@example.test", doubled) == doubled


def test_from_domain_decides_not_the_envelope(data_dir: Path) -> None:
    signed = DkimSigner(data_dir, HOSTNAME).sign("someone@elsewhere.test", MESSAGE)
    assert [t["d"] for t in signature_tags(signed)] == ["example.test", "example.test"]


def test_null_sender_signs_for_the_hostname_domain(data_dir: Path) -> None:
    bounce = (b"From: Mail Delivery System <MAILER-DAEMON@mail.example.test>\r\n"
              b"To: alice@peer.test\r\nSubject: Undelivered\r\n\r\nSorry.\r\n")
    signed = DkimSigner(data_dir, HOSTNAME).sign("", bounce)
    assert [t["d"] for t in signature_tags(signed)] == ["example.test", "example.test"]
    assert verify_all(signed, dns_for(data_dir)) == [True, True]
    # a hostname outside our domains: bounces leave unsigned
    assert DkimSigner(data_dir, "mx.other.test").sign(
        "", bounce.replace(b"mail.example.test", b"mx.other.test")) == bounce.replace(
        b"mail.example.test", b"mx.other.test")


def test_rotation_applies_without_a_new_signer(tmp_path: Path) -> None:
    keys.ensure_keys(tmp_path, "example.test", datetime.date(2026, 11, 1))
    signer = DkimSigner(tmp_path, HOSTNAME)
    assert signature_tags(signer.sign("a@example.test", MESSAGE))[0]["s"] == "ms202611r"
    keys.start_rotation(tmp_path, "example.test", datetime.date(2026, 12, 1))
    assert signature_tags(signer.sign("a@example.test", MESSAGE))[0]["s"] == "ms202611r"
    keys.activate_pending(tmp_path, "example.test")
    signed = signer.sign("a@example.test", MESSAGE)
    assert [t["s"] for t in signature_tags(signed)] == ["ms202612r", "ms202612e"]
    assert verify_all(signed, dns_for(tmp_path)) == [True, True]


def test_header_helpers() -> None:
    assert from_domain(b"from:\r\n  Alice\r\n <alice@B\xc3\xbccher.example>\r\n\r\nx") == (
        "xn--bcher-kva.example")
    assert from_domain(b"Subject: no from\r\n\r\nFrom: body@example.test\r\n") is None
    assert from_domain(b"From: not an address\r\n\r\n") is None
    # two From fields, or two addresses in one: no single author to sign for
    assert from_domain(b"From: a@ours.example\r\nFrom: b@ours.example\r\n\r\n") is None
    assert from_domain(b"From: a@ours.example, b@ours.example\r\n\r\n") is None
    assert from_domain(b"From: a@ours.example\n\nFrom: b@ours.example\n") == "ours.example"
    assert header_names(b"A: 1\r\n b\r\nC: 2\n\nD: 3\n") == ["a", "c"]
