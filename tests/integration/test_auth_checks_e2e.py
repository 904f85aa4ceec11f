"""End to end: the real engine's MX authenticates inbound mail (SPF, DKIM, ARC, DMARC;
appliance/checks/authentication.py) against a real Knot DNS serving the senders' SPF, DKIM
and DMARC records.

A dkimpy-signed message verifies (`dkim=pass` in the stored Authentication-Results); a body
changed in transit is `dkim=fail`; a forged From under p=reject gets `550 5.7.1` at DATA and
nothing is stored; p=quarantine goes to Junk; a mailing list's ARC chain from a trusted
sealer is accepted despite p=reject, an untrusted one is not; 200 signatures, a DNS server
that refuses and one that never answers give defined results and the mail is accepted.
"""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.smtp import replies
from harness.arc_chain import Key, Signer, list_rewrite, plain_message, txt_zone_line
from harness.engine import EngineProcess
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(180)
RCPT = "carol@inbox.test"
AUTHOR = Signer("signed.test", "s1", Key.generate(2048))     # p=reject, SPF 127/8
QUARANTINED = Signer("quarantine.test", "s1")                # p=quarantine, no SPF
TRUSTED_LIST = Signer("lists.test", "arc")
OTHER_LIST = Signer("other-lists.test", "arc")
ZONES = {
    "signed.test": ['@ TXT "v=spf1 ip4:127.0.0.0/8 -all"', '_dmarc TXT "v=DMARC1; p=reject"',
                    txt_zone_line("s1._domainkey", AUTHOR.key.record)],
    "quarantine.test": ['_dmarc TXT "v=DMARC1; p=quarantine; sp=quarantine"',
                        txt_zone_line("s1._domainkey", QUARANTINED.key.record)],
    "lists.test": [txt_zone_line("arc._domainkey", TRUSTED_LIST.key.record)],
    "other-lists.test": [txt_zone_line("arc._domainkey", OTHER_LIST.key.record)],
    "evil.test": ['@ TXT "v=spf1 -all"'],
}


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    with KnotDns(tmp_path_factory.mktemp("auth-knot"),
                 {name: zone_text(name, lines) for name, lines in ZONES.items()}) as server:
        yield server


def start_engine(data: Path, resolver: str, **settings: object) -> EngineProcess:
    values: dict[str, object] = {
        "outbound__resolver": resolver, "checks__dns_timeout": 2,
        "checks__authentication": True,
        "checks__arc_trusted_sealers": "lists.test",
        "greylist__enabled": False, "dnsbl__enabled": False}     # their own tests cover them
    engine = EngineProcess(data, **{**values, **settings})
    engine.start()
    engine.add_domain("inbox.test")
    engine.add_account(RCPT)
    return engine


@pytest.fixture(scope="module")
def mx(knot: KnotDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("auth-mx") / "data", knot.resolver_spec)
    try:
        yield engine
    finally:
        assert engine.stop() == 0, engine.log_text()[-3000:]


def send(mx: EngineProcess, mail_from: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=60) as client:
        client.ehlo("client.signed.test")
        client.sendmail(mail_from, [RCPT], data)


def newest(mx: EngineProcess, folder: str = "") -> bytes:
    """The newest message in INBOX (or `folder`), waiting briefly for it."""
    root = mx.maildir(RCPT) / (f".{folder}" if folder else "")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        files = sorted((root / "new").glob("*"), key=lambda p: p.stat().st_mtime_ns) \
            if (root / "new").is_dir() else []
        if files:
            return files[-1].read_bytes()
        time.sleep(0.05)
    raise AssertionError(f"nothing in {folder or 'INBOX'}")


def count(mx: EngineProcess, folder: str = "") -> int:
    new = mx.maildir(RCPT) / (f".{folder}" if folder else "") / "new"
    return len(list(new.iterdir())) if new.is_dir() else 0


def auth_results(stored: bytes) -> str:
    """The unfolded Authentication-Results field we added to a stored message (a list's
    own field, under its authserv-id, stays as it came)."""
    head = stored.replace(b"\r\n", b"\n").split(b"\n\n")[0].decode()
    unfolded = head.replace("\n\t", " ").replace("\n ", " ")
    fields = [line for line in unfolded.split("\n")
              if line.lower().startswith("authentication-results: mx.mailstead.test;")]
    assert len(fields) == 1, fields
    return fields[0]


def author_message(subject: str, sender: str = "alice@signed.test") -> bytes:
    return plain_message(sender, subject).replace(b"<arc-test-1@origin.example>",
                                                  f"<{subject}@signed.test>".encode())


def test_a_dkim_signed_message_verifies(mx: EngineProcess) -> None:
    send(mx, "bounce@evil.test", AUTHOR.dkim_sign(author_message("signed")))
    header = auth_results(newest(mx))
    assert header.startswith("Authentication-Results: mx.mailstead.test;")
    assert "dkim=pass header.d=signed.test header.s=s1 header.b=" in header
    assert "spf=fail smtp.mailfrom=bounce@evil.test" in header
    assert "dmarc=pass (p=reject dis=none) header.from=signed.test" in header
    assert "arc=none" in header


def test_a_body_changed_in_transit_fails_dkim_but_spf_aligns(mx: EngineProcess) -> None:
    signed = AUTHOR.dkim_sign(author_message("changed"))
    send(mx, "alice@signed.test", signed.replace(b"Hello list.", b"Hello world."))
    header = auth_results(newest(mx))
    assert "dkim=fail (body hash mismatch) header.d=signed.test" in header
    assert "spf=pass smtp.mailfrom=alice@signed.test" in header
    assert "dmarc=pass" in header


def test_a_forged_from_under_p_reject_is_refused_at_data(mx: EngineProcess) -> None:
    before = count(mx)
    forged = author_message("forged")       # claims signed.test, no signature, SPF fails
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mx, "ceo@evil.test", forged)
    error = refused.value.smtp_error
    text = error.decode() if isinstance(error, bytes) else error
    assert (refused.value.smtp_code, text) == (550, replies.DMARC_REJECTED[4:])
    time.sleep(0.2)
    assert count(mx) == before
    assert '"dmarc fail for signed.test p=reject dis=reject"' in mx.log_text()


def test_p_quarantine_goes_to_junk(mx: EngineProcess) -> None:
    inbox = count(mx)
    message = plain_message("news@mail.quarantine.test", "quarantined")
    send(mx, "news@evil.test", message)
    header = auth_results(newest(mx, "Junk"))
    assert "dmarc=fail (p=quarantine dis=quarantine) header.from=mail.quarantine.test" \
        in header
    assert count(mx) == inbox


def test_arc_from_a_trusted_list_overrides_p_reject(mx: EngineProcess) -> None:
    signed = AUTHOR.dkim_sign(author_message("via-list"))
    forwarded = TRUSTED_LIST.seal(list_rewrite(signed), "none")
    send(mx, "list-bounces@lists.test", forwarded)
    header = auth_results(newest(mx))
    assert "dkim=fail" in header
    assert "arc=pass" in header
    assert "dmarc=fail (p=reject dis=reject) header.from=signed.test" in header
    assert "overridden: ARC sealed by lists.test" in mx.log_text()


def test_arc_from_an_untrusted_list_does_not(mx: EngineProcess) -> None:
    signed = AUTHOR.dkim_sign(author_message("via-other-list"))
    forwarded = OTHER_LIST.seal(list_rewrite(signed), "none")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mx, "list-bounces@other-lists.test", forwarded)
    assert refused.value.smtp_code == 550


def test_two_hundred_signatures_are_bounded(mx: EngineProcess) -> None:
    signed = AUTHOR.dkim_sign(author_message("flood"))
    field = signed.split(b"\r\nFrom:")[0] + b"\r\n"
    started = time.monotonic()
    send(mx, "alice@signed.test", field * 199 + signed)
    assert time.monotonic() - started < 15
    header = auth_results(newest(mx))
    assert header.count("dkim=pass") == 10
    assert "dkim=policy (190 more signatures not verified, limit 10)" in header


def test_malformed_signatures_are_neutral_and_accepted(mx: EngineProcess) -> None:
    bad = (b"DKIM-Signature: v=1; a=rsa-sha256; d=signed.test; h=from; bh=AA; b=AA\r\n"
           b"DKIM-Signature: total garbage\r\n")
    send(mx, "alice@signed.test", bad + author_message("malformed"))
    header = auth_results(newest(mx))
    assert header.count("dkim=neutral") == 2
    assert "dmarc=pass" in header                                  # through SPF


def test_a_refusing_server_gives_temperror_and_the_message_is_accepted(
        mx: EngineProcess) -> None:
    message = plain_message("someone@unserved.test", "unserved")
    send(mx, "someone@unserved.test", message)
    header = auth_results(newest(mx))
    assert "spf=temperror" in header
    assert "dmarc=temperror header.from=unserved.test" in header


def test_a_silent_dns_server_gives_temperror_and_the_message_is_accepted(
        tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        engine = start_engine(tmp_path / "data", f"127.0.0.1:{hole.getsockname()[1]}",
                              checks__dns_timeout=1)
        try:
            started = time.monotonic()
            send(engine, "alice@signed.test", AUTHOR.dkim_sign(author_message("silent")))
            elapsed = time.monotonic() - started
            header = auth_results(newest(engine))
        finally:
            assert engine.stop() == 0
    assert "dkim=temperror" in header
    assert "dmarc=temperror header.from=signed.test" in header
    assert elapsed < 10


def test_the_check_can_be_turned_off(knot: KnotDns, tmp_path: Path) -> None:
    engine = start_engine(tmp_path / "data", knot.resolver_spec,
                          checks__authentication=False)
    try:
        send(engine, "ceo@evil.test", author_message("unchecked"))
        assert auth_results(newest(engine)) == \
            "Authentication-Results: mx.mailstead.test; none"
    finally:
        assert engine.stop() == 0
