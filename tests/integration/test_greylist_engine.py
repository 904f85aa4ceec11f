"""Greylisting on the real engine (two worker processes sharing greylist.db): a first attempt
gets 451 4.7.1, an early retry too, a retry after `greylist.delay` is delivered, and then the
(client network, sender domain) is allowlisted; with the authentication check asking a real
Knot, a sender domain that SPF proves and that we accepted before skips greylisting from
anywhere. Clients bind 127.0.0.x to be other hosts; 127.0.1.x is another /24."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import greeted
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(120)
DELAY = 3
MX_SETTINGS = {"greylist__enabled": True, "greylist__delay": DELAY, "engine__workers": 2}


def send(mx: EngineProcess, source: str, sender: str, recipient: str) -> str:
    """One transaction from `source`; the reply to the end of DATA (or the first refusal)."""
    with greeted(mx.smtp_port, source=source) as wire:
        for command in (f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"):
            reply = wire.command(command)
            if reply.code >= 400:
                return str(reply)
        wire.send(b"From: <" + sender.encode() + b">\r\nSubject: greylist\r\n\r\nhello\r\n")
        return str(wire.command("."))


def test_first_attempt_is_deferred_and_a_late_retry_delivered(mx: EngineProcess) -> None:
    sender, recipient = "news@sender.example", "alice@example.test"
    first = time.monotonic()
    assert send(mx, "127.0.0.1", sender, recipient) == replies.POLICY_DEFERRED
    assert send(mx, "127.0.0.1", sender, recipient) == replies.POLICY_DEFERRED    # too early
    assert mx.messages(recipient) == []
    time.sleep(max(0.0, first + DELAY + 0.5 - time.monotonic()))
    assert send(mx, "127.0.0.1", sender, recipient).startswith("250 ")
    assert len(mx.messages(recipient)) == 1
    # allowlisted: another host of the /24, another sender of the domain, another recipient
    assert send(mx, "127.0.0.77", "billing@sender.example", "bob@example.test").startswith(
        "250 ")
    # not for another network, nor for another sender domain
    assert send(mx, "127.0.1.5", sender, "bob@example.test") == replies.POLICY_DEFERRED
    assert send(mx, "127.0.0.1", "x@other.example", recipient) == replies.POLICY_DEFERRED
    assert (mx.data_dir / "greylist.db").exists()
    log = mx.log_text()
    assert "greylist.deferred" in log
    assert "first attempt" in log


def test_null_sender_is_greylisted_too(mx: EngineProcess) -> None:
    assert send(mx, "127.0.2.1", "", "alice@example.test") == replies.POLICY_DEFERRED


@pytest.fixture(scope="module")
def spf_mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine whose authentication check asks a Knot serving SPF for spf.example."""
    zone = zone_text("spf.example", ['@ TXT "v=spf1 ip4:127.0.0.0/8 -all"'])
    with KnotDns(tmp_path_factory.mktemp("greylist-knot"), {"spf.example": zone}) as knot:
        engine = EngineProcess(tmp_path_factory.mktemp("greylist-spf") / "data",
                               greylist__enabled=True, greylist__delay=DELAY,
                               checks__authentication=True,
                               outbound__resolver=knot.resolver_spec)
        engine.start()
        engine.add_domain("example.test")
        engine.add_account("alice@example.test")
        engine.add_account("bob@example.test")
        try:
            yield engine
        finally:
            assert engine.stop() == 0, engine.log_text()[-3000:]


def test_spf_authenticated_sender_seen_before_skips_greylisting(spf_mx: EngineProcess
                                                                ) -> None:
    sender = "orders@spf.example"
    first = time.monotonic()
    # SPF passes, but the domain was never accepted: greylisted like anyone
    assert send(spf_mx, "127.0.3.1", sender, "alice@example.test") == replies.POLICY_DEFERRED
    time.sleep(max(0.0, first + DELAY + 0.5 - time.monotonic()))
    assert send(spf_mx, "127.0.3.1", sender, "alice@example.test").startswith("250 ")
    # now known: another network (SPF still passes there) is not greylisted
    assert send(spf_mx, "127.0.4.1", sender, "bob@example.test").startswith("250 ")
    assert "spf=pass" in spf_mx.messages("bob@example.test")[-1].decode(errors="replace")
