"""End to end, the other way: a real Postfix relays mail to the real engine's MX.

A private Postfix trusts loopback clients (`mynetworks`) and sends everything that is not its
own to `relayhost = [127.0.0.1]:<our MX port>`. The test hands it a message with smtplib;
Postfix queues it, connects to our MX (in plain text, and with `smtp_tls_security_level =
may`, over STARTTLS with our self-signed certificate) and must log `status=sent` with our
queue id, and the message must be in the recipients' Maildirs under both trace headers.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from harness.e2e import wait_until
from harness.engine import EngineProcess, free_port
from peers.postfix import PostfixInstance

pytestmark = pytest.mark.timeout(120)
ALICE, BOB = "alice@example.test", "bob@example.test"
SENDER = "someone@client.test"
HOSTNAME = "mx.mailstead.test"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("e2e-in") / "data")
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(ALICE)
    proc.add_account(BOB)
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


@pytest.fixture(scope="module", params=["none", "may"], ids=["plain", "starttls"])
def relay(request: pytest.FixtureRequest, engine: EngineProcess) -> Iterator[PostfixInstance]:
    """A Postfix that relays for loopback clients to our MX, with the TLS level given."""
    workdir = Path(tempfile.mkdtemp(prefix="mailstead-e2e-relay-"))
    settings = {"relayhost": f"[127.0.0.1]:{engine.smtp_port}",
                "default_transport": "smtp", "relay_transport": "smtp",
                "smtp_tls_security_level": request.param, "smtp_tls_loglevel": "1"}
    instance = PostfixInstance(workdir, free_port(), [], [], trusted_networks="127.0.0.0/8",
                               main_cf=settings)
    try:
        with instance:
            yield instance
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def postfix_log_line(relay: PostfixInstance, pattern: str) -> re.Match[str] | None:
    with contextlib.suppress(OSError):
        return re.search(pattern, relay.log_path.read_text(errors="replace"))
    return None


def test_postfix_relays_a_message_to_our_mx(engine: EngineProcess,
                                            relay: PostfixInstance) -> None:
    tls = relay.overrides["smtp_tls_security_level"] == "may"
    before = {a: len(engine.messages(a)) for a in (ALICE, BOB)}
    subject = f"e2e: relayed by Postfix ({'starttls' if tls else 'plain'})"
    body = "Hello from Postfix.\r\n.a dot line\r\n" + "y" * 900 + "\r\n"
    sent = (f"From: <{SENDER}>\r\nTo: <{ALICE}>, <{BOB}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{relay.port}.{int(tls)}@client.test>\r\n\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", relay.port, local_hostname="client.test",
                      timeout=10) as client:
        client.ehlo()
        client.mail(SENDER)
        assert client.rcpt(ALICE)[0] == 250
        assert client.rcpt(BOB)[0] == 250
        code, text = client.data(sent)
    assert code == 250, text
    postfix_id = text.decode().rsplit(" ", 1)[1]

    # Postfix's log: one delivery to our MX for both recipients, answered with our queue id
    sent_line = rf"{postfix_id}: to=<{ALICE}>, relay=127.0.0.1\[127.0.0.1\]:{engine.smtp_port}"
    pattern = sent_line + r".*status=sent \(250 2\.0\.0 OK: queued as (\w+)\)"
    wait_until(lambda: postfix_log_line(relay, pattern) is not None, 20, "Postfix's status=sent")
    found = postfix_log_line(relay, pattern)
    assert found is not None
    our_id = found[1]
    assert postfix_log_line(relay, rf"{postfix_id}: to=<{BOB}>, .*status=sent "
                                   rf"\(250 2\.0\.0 OK: queued as {our_id}\)")
    tls_line = postfix_log_line(
        relay, rf"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:"
               rf"{engine.smtp_port}: (TLSv1\.\d)")
    assert (tls_line is not None) == tls

    wait_until(lambda: all(len(engine.messages(a)) == before[a] + 1 for a in before), 10,
               "delivery to both mailboxes")
    for address in (ALICE, BOB):
        stored = engine.messages(address)[-1]
        assert stored.endswith(b"\n\n" + body.replace("\r\n", "\n").encode())
        parsed = parse(stored)
        assert parsed["Subject"] == subject
        assert parsed["Return-Path"] == f"<{SENDER}>"
        ours, postfix = (str(r) for r in parsed.get_all("Received", [])[:2])
        assert ours.startswith(f"from {relay.name}.localhost ([127.0.0.1])")
        assert f"by {HOSTNAME} (Mailstead) with ESMTP{'S' if tls else ''} id {our_id};" in ours
        assert postfix.startswith("from client.test (")
        assert f"by {relay.name}.localhost (Postfix) with ESMTP id {postfix_id}" in postfix
