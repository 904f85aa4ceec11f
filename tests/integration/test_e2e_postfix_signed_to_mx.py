"""Signed mail the other way: a DKIM-signed message relayed by a real Postfix reaches our MX
and our inbound checks verify it (SPF for Postfix's address, both DKIM signatures, DMARC
p=reject aligned), against a real Knot DNS serving the sender domain's records.

The message is signed with our own signer (dkimpy, RSA-SHA256 and Ed25519-SHA256) before it
is handed to Postfix, which relays it unchanged over SMTP to our MX: what a big sender's
outbound relay does. The outbound direction (our signatures verified by dkimverify and
opendkim-testmsg) is tests/integration/test_e2e_dkim_signing.py.
"""

from __future__ import annotations

import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.dkim import keys
from appliance.dkim.records import txt_line
from appliance.dkim.signer import DkimSigner
from harness.e2e import wait_until
from harness.engine import EngineProcess, free_port
from peers.dns import KnotDns, zone_text
from peers.postfix import PostfixInstance

pytestmark = pytest.mark.timeout(180)
SENDER_DOMAIN = "signer.test"
SENDER = f"news@{SENDER_DOMAIN}"
RECIPIENT = "ann@inbox.test"
HOSTNAME = "mx.inbox.test"


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("signer-keys")
    keys.ensure_keys(data, SENDER_DOMAIN)
    return data


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory, signing: Path) -> Iterator[KnotDns]:
    pair = keys.ensure_keys(signing, SENDER_DOMAIN).active
    records = [txt_line(owner, value)
               for owner, value in keys.pair_records(signing, SENDER_DOMAIN, pair)]
    zone = zone_text(SENDER_DOMAIN, ['@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
                                     '_dmarc TXT "v=DMARC1; p=reject"', *records])
    with KnotDns(tmp_path_factory.mktemp("signer-knot"), {SENDER_DOMAIN: zone}) as server:
        yield server


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, knot: KnotDns) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("signed-in") / "data",
                         server__hostname=HOSTNAME, checks__authentication=True,
                         outbound__resolver=knot.resolver_spec, checks__dns_timeout=2)
    with proc:
        proc.add_domain("inbox.test")
        proc.add_account(RECIPIENT)
        yield proc


@pytest.fixture(scope="module")
def relay(engine: EngineProcess) -> Iterator[PostfixInstance]:
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-e2e-signed-"))
    settings = {"relayhost": f"[127.0.0.1]:{engine.smtp_port}",
                "default_transport": "smtp", "relay_transport": "smtp",
                "smtp_tls_security_level": "may"}
    instance = PostfixInstance(workdir, free_port(), [], [], trusted_networks="127.0.0.0/8",
                               main_cf=settings)
    try:
        with instance:
            yield instance
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def authentication_results(stored: bytes) -> str:
    header = stored.split(b"\n\n", 1)[0].decode()
    start = header.index("Authentication-Results: ")
    field = header[start:].split("\n")
    lines = [field[0]] + [line for line in field[1:1 + 10] if line[:1] in (" ", "\t")]
    return " ".join(line.strip() for line in lines)


def test_a_signed_message_relayed_by_postfix_verifies(engine: EngineProcess, signing: Path,
                                                      relay: PostfixInstance) -> None:
    message = (f"From: Signer News <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
               "Subject: signed through Postfix\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
               "Message-ID: <relayed-1@signer.test>\r\n\r\nHello from a signed domain.\r\n"
               ).encode()
    signed = DkimSigner(signing, "out.signer.test").sign(SENDER, message)
    assert signed.count(b"DKIM-Signature:") == 2
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as client:
        client.sendmail(SENDER, [RECIPIENT], signed)
    wait_until(lambda: bool(engine.messages(RECIPIENT)), timeout=60,
               what="the relayed message in the Maildir")
    [stored] = engine.messages(RECIPIENT)
    results = authentication_results(stored)
    assert results.startswith(f"Authentication-Results: {HOSTNAME};")
    assert f"spf=pass smtp.mailfrom={SENDER}" in results
    assert results.count(f"dkim=pass header.d={SENDER_DOMAIN}") == 2
    assert f"dmarc=pass (p=reject dis=none) header.from={SENDER_DOMAIN}" in results
    assert b"(Postfix)" in stored                    # it came through Postfix
