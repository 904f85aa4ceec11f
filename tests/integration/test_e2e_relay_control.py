"""Relay control end to end: nothing leaves without a login, and a login is no licence to aim
the queue at this host or at a bare IP address.

The remote recipients here are real: Knot resolves peer.test to a running Postfix, so any
message the engine wrongly queued would really be delivered. After the refusals the engine's
queue is empty (`mailstead queue list`) and Postfix never heard from us.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from appliance.smtp import replies
from harness.e2e import queue_cli, queue_empty, wait_until
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted
from harness.submission import (
    auth_plain,
    implicit_tls_wire,
    logged_in,
    message,
    starttls_wire,
    transaction,
)
from peers.mail_world import MailWorld, mail_world

pytestmark = pytest.mark.timeout(120)
ALICE = "alice@example.test"
CAROL = "carol@peer.test"                  # a real mailbox behind a real MX
REMOTE = [CAROL, "alice@later.test", "user@remote.example"]
# RFC 6761 localhost names, address literals, IPv4 addresses as domains, our own host name
REFUSED = ["user@localhost", "user@LOCALHOST", "user@mail.localhost", "user@[127.0.0.1]",
           "user@[IPv6:::1]", "user@[192.0.2.7]", "user@127.0.0.1", "user@10.0.0.1",
           "postmaster@mx.mailstead.test"]


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    with mail_world("e2e-relay") as started:
        yield started


@pytest.fixture(scope="module")
def engine(world: MailWorld, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("e2e-relay") / "data",
                         **world.engine_settings(auth__failure_delay_ms=0))
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(ALICE)
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def peer_transactions(world: MailWorld) -> int:
    """Mail transactions Postfix's smtpd started (`QUEUEID: client=...` in its log)."""
    return len(re.findall(r"smtpd\[\d+\]: \w+: client=", world.peer.log_tail(10_000)))


def unauthenticated(engine: EngineProcess) -> list[SMTPWire]:
    """Submission sessions without a login: plain, after STARTTLS, on 465, after a failure."""
    failed = starttls_wire(engine)
    assert auth_plain(failed, ALICE, "wrong password").code == 535
    return [greeted(engine.submission_port), starttls_wire(engine), implicit_tls_wire(engine),
            failed]


@pytest.mark.parametrize("sender", [ALICE, "someone@client.test", ""])
def test_mx_relays_nothing(world: MailWorld, engine: EngineProcess, sender: str) -> None:
    """Not even for a sender in our own domain: the MX only takes mail for local users."""
    transactions = peer_transactions(world)
    with greeted(engine.smtp_port) as wire:
        assert wire.command(f"MAIL FROM:<{sender}>").code == 250
        for recipient in REMOTE + REFUSED:
            assert wire.command(f"RCPT TO:<{recipient}>").code // 100 == 5, recipient
        assert str(wire.command(f"RCPT TO:<{CAROL}>")) == replies.RELAY_DENIED
        assert wire.command("DATA").code == 503          # no recipient was taken
    assert queue_empty(engine)
    assert peer_transactions(world) == transactions


def test_submission_without_login_relays_nothing(world: MailWorld,
                                                 engine: EngineProcess) -> None:
    transactions = peer_transactions(world)
    for wire in unauthenticated(engine):
        with wire:
            assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.AUTH_REQUIRED
            for recipient in REMOTE:
                assert str(wire.command(f"RCPT TO:<{recipient}>")) == replies.AUTH_REQUIRED
            assert wire.command("DATA").code // 100 == 5
    assert queue_cli(engine, "list").strip() == "queue is empty"
    assert peer_transactions(world) == transactions


def test_login_does_not_open_loopback_or_address_literals(world: MailWorld,
                                                          engine: EngineProcess) -> None:
    """Each refused at RCPT with a 5xx; the one real recipient beside them is delivered, and
    only it: the queue never held anything for the others."""
    before = world.peer.count_delivered(CAROL)
    transactions = peer_transactions(world)
    with logged_in(engine, ALICE) as wire:
        assert wire.command(f"MAIL FROM:<{ALICE}>").code == 250
        for recipient in REFUSED:
            assert str(wire.command(f"RCPT TO:<{recipient}>")) == (
                replies.DESTINATION_REFUSED), recipient
        wire.command("RSET")
        reply = transaction(wire, ALICE, [CAROL], message(ALICE, CAROL, "e2e: relay control"))
        assert reply.code == 250, str(reply)
    queue_id = str(reply).rsplit(" ", 1)[1]
    wait_until(lambda: world.peer.count_delivered(CAROL) == before + 1, 20, "delivery")
    wait_until(lambda: queue_empty(engine), 10, "an empty queue")
    assert peer_transactions(world) == transactions + 1
    log = engine.log_text()
    assert len(re.findall(rf'"delivery.result".*"queue_id": "{queue_id}"', log)) == 1
    assert log.count('"reason": "refused_destination"') == len(REFUSED)
