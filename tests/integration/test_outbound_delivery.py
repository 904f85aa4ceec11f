"""One delivery attempt against real peers: Knot DNS for the zones, Postfix as the remote MX.

Every test calls `transport.deliver` (or the SMTP session) for real: MX lookups go to the
test's own Knot on loopback, connections go to Postfix on 127.0.0.2 (with STARTTLS) or to
nothing on 127.0.0.3, and delivered mail is read back from Postfix's Maildir.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from appliance.outbound import delivery_replies as dr
from appliance.outbound.client import SmtpSession, Timeouts
from appliance.outbound.connections import SessionPool
from appliance.outbound.service import session_pool
from appliance.outbound.transport import TransportConfig, deliver
from appliance.outbound.types import (
    OutboundEnvelope,
    OutboundRecipient,
    Outcome,
    RecipientResult,
)
from appliance.settings import load_settings
from appliance.tls.contexts import client_context
from peers.outbound_world import HELO_NAME, PEER_IP, OutboundWorld, outbound_world

pytestmark = pytest.mark.timeout(120)
QUICK_GREETING = Timeouts(connect=3, greeting=1, mail=5, rcpt=5, data_init=5, data_block=5,
                          data_end=5)

MESSAGE = (b"From: <sender@example.org>\nTo: <alice@direct.test>\nSubject: outbound test\n"
           b"\nfirst line\n.a line that starts with a dot\n.\nlast line\n")


def peer_logged(world: OutboundWorld, text: str, count: int = 1, timeout: float = 10.0) -> bool:
    """Whether the peer Postfix logged `text` `count` times; its `disconnect from` line is
    written after our QUIT, through postlogd, so it is waited for."""
    deadline = time.monotonic() + timeout
    while world.peer.log_tail(400).count(text) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def world() -> Iterator[OutboundWorld]:
    with outbound_world("outbound") as started:
        yield started


@pytest.fixture
def config(world: OutboundWorld, tmp_path: Path) -> TransportConfig:
    return world.config(tmp_path / "mta-sts")


def envelope(*addresses: str, sender: str = "sender@example.org",
             **extra: object) -> OutboundEnvelope:
    recipients = tuple(OutboundRecipient(a) for a in addresses)
    return OutboundEnvelope("Q1", sender, recipients, len(MESSAGE), **extra)  # type: ignore[arg-type]


def run(env: OutboundEnvelope, config: TransportConfig,
        message: bytes = MESSAGE) -> list[RecipientResult]:
    return asyncio.run(deliver(env, message, config=config))


def test_delivers_to_postfix_over_starttls(world: OutboundWorld,
                                           config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@direct.test")
    (result,) = run(envelope("alice@direct.test"), config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.reply.startswith("250 2.0.0 Ok")
    assert result.remote_host == f"mx.direct.test[{PEER_IP}]"
    assert result.details["tls"].startswith("TLSv1.")
    assert result.details["tls_verified"] == "false"        # opportunistic: no policy
    assert world.wait_for(world.peer, "alice@direct.test", before + 1)
    stored = world.messages(world.peer, "alice@direct.test")[-1]
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["Subject"] == "outbound test"
    # Postfix wrote the TLS it saw into its Received header (smtpd_tls_received_header)
    assert "using TLSv1." in str(parsed["Received"])
    # dot-stuffing undone by the peer: the body arrives as it was queued
    assert stored.endswith(b"\nfirst line\n.a line that starts with a dot\n.\nlast line\n")
    assert "TLS connection established" in world.peer.log_tail(200)


def test_mx_preference_fallback_to_the_second_mx(world: OutboundWorld,
                                                 config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@peer.test")
    (result,) = run(envelope("alice@peer.test"), config)
    # mx1.peer.test (preference 10, 127.0.0.3) refuses connections; mx2 (20) takes it
    assert result.outcome is Outcome.DELIVERED, result
    assert result.remote_host == f"mx2.peer.test[{PEER_IP}]"
    assert world.wait_for(world.peer, "alice@peer.test", before + 1)


def test_one_recipient_refused_with_550_while_another_is_delivered(
        world: OutboundWorld, config: TransportConfig) -> None:
    before = world.peer.count_delivered("bob@direct.test")
    good, bad = run(envelope("bob@direct.test", "nobody@direct.test"), config)
    assert good.outcome is Outcome.DELIVERED
    assert bad.outcome is Outcome.FAILED
    assert bad.reply.startswith("550 5.1.1 <nobody@direct.test>")
    assert world.wait_for(world.peer, "bob@direct.test", before + 1)


def test_null_mx_fails_at_once_with_5_1_10(config: TransportConfig) -> None:
    results = run(envelope("a@nullmx.test", "b@nullmx.test"), config)
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert results[0].reply == dr.render(dr.NULL_MX, domain="nullmx.test")
    assert results[0].reply.startswith("556 5.1.10")


def test_implicit_mx_from_the_a_record(world: OutboundWorld,
                                       config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@aonly.test")
    (result,) = run(envelope("alice@aonly.test"), config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.remote_host == f"aonly.test[{PEER_IP}]"
    assert world.wait_for(world.peer, "alice@aonly.test", before + 1)


def test_peer_down_is_deferred(config: TransportConfig) -> None:
    (result,) = run(envelope("alice@down.test"), config)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith("451 4.4.1 Cannot connect to mx.down.test[127.0.0.3]")


def test_a_domain_that_does_not_exist_fails(config: TransportConfig) -> None:
    (result,) = run(envelope("alice@nosuch.test"), config)
    assert result.outcome is Outcome.FAILED
    assert result.reply == dr.render(dr.NO_SUCH_DOMAIN, domain="nosuch.test")


def test_a_refusing_dns_server_defers(config: TransportConfig) -> None:
    (result,) = run(envelope("alice@elsewhere.example"), config)   # not Knot's zone: REFUSED
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith("451 4.4.3")


def test_a_silent_dns_server_defers(world: OutboundWorld, tmp_path: Path) -> None:
    config = world.config(tmp_path, resolver="127.0.0.1:9", dns_timeout=1.0)
    (result,) = run(envelope("alice@direct.test"), config)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith("451 4.4.3")


def test_mx_without_address_defers(config: TransportConfig) -> None:
    (result,) = run(envelope("alice@noaddr.test"), config)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply == dr.render(dr.NO_MX_ADDRESS, domain="noaddr.test")


def test_mail_loop_to_ourselves_fails(world: OutboundWorld, tmp_path: Path) -> None:
    config = world.config(tmp_path, helo_name=f"{world.peer.name}.localhost")
    (result,) = run(envelope("alice@direct.test"), config)
    assert result.outcome is Outcome.FAILED
    assert result.reply.startswith("554 5.4.6 Mail for direct.test loops back to myself")


def test_smtputf8_message_to_postfix(world: OutboundWorld, config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@direct.test")
    message = "From: <jörg@example.org>\nSubject: grüße\n\nüber\n".encode()
    env = envelope("alice@direct.test", sender="jörg@example.org", smtputf8=True)
    (result,) = run(env, config, message)
    assert result.outcome is Outcome.DELIVERED, result
    assert world.wait_for(world.peer, "alice@direct.test", before + 1)
    assert "grüße".encode() in world.messages(world.peer, "alice@direct.test")[-1]


class _Silent:
    """A TCP server on 127.0.0.5 that accepts connections and never says a word."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> _Silent:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await reader.read()
            writer.close()

        self.server = await asyncio.start_server(hold, "127.0.0.5", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def test_greeting_timeout_moves_on_to_the_next_mx(world: OutboundWorld,
                                                  tmp_path: Path) -> None:
    config = world.config(tmp_path, timeouts=QUICK_GREETING)
    before = world.peer.count_delivered("alice@slow.test")

    async def scenario() -> tuple[list[RecipientResult], float]:
        async with _Silent(world.smtp_port):
            started = time.monotonic()
            results = await deliver(envelope("alice@slow.test"), MESSAGE, config=config)
            return results, time.monotonic() - started

    (result,), elapsed = asyncio.run(scenario())
    assert result.outcome is Outcome.DELIVERED, result
    assert result.remote_host == f"mx2.peer.test[{PEER_IP}]"
    assert elapsed >= 1.0
    assert world.wait_for(world.peer, "alice@slow.test", before + 1)


def test_a_silent_peer_alone_is_deferred_with_a_timeout(world: OutboundWorld,
                                                        tmp_path: Path) -> None:
    config = world.config(tmp_path, timeouts=QUICK_GREETING, max_addresses=1)

    async def scenario() -> list[RecipientResult]:
        async with _Silent(world.smtp_port):
            return await deliver(envelope("alice@slow.test"), MESSAGE, config=config)

    (result,) = asyncio.run(scenario())
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith("451 4.4.2 Timed out waiting for mx.slow.test[127.0.0.5]")


class _Collect:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 2.0.0 Ok: kept"


def test_ipv6_mx(world: OutboundWorld, config: TransportConfig) -> None:
    handler = _Collect()
    controller = Controller(handler, hostname="::1", port=world.smtp_port)
    controller.start()
    try:
        (result,) = run(envelope("carol@v6.test"), config)
    finally:
        controller.stop()
    assert result.outcome is Outcome.DELIVERED, result
    assert result.remote_host == "mx.v6.test[::1]"
    assert handler.received[0][:2] == ("sender@example.org", ["carol@v6.test"])
    assert handler.received[0][2].startswith(b"From: <sender@example.org>\r\nTo:")


def test_several_messages_on_one_session(world: OutboundWorld) -> None:
    """The runner may send many messages per connection: RSET after a refused one."""
    before = world.peer.count_delivered("alice@direct.test")
    timeouts = world.config(Path("/nonexistent")).timeouts

    async def scenario() -> list[list[RecipientResult]]:
        session = await SmtpSession.connect(PEER_IP, world.smtp_port,
                                            remote="mx.direct.test", timeouts=timeouts)
        await session.hello(HELO_NAME)
        await session.starttls(client_context(verify=True, ca_file=world.ca_file),
                               "mx.direct.test", HELO_NAME)
        outcomes = [await session.send(envelope("alice@direct.test"), MESSAGE),
                    await session.send(envelope("nobody@direct.test"), MESSAGE),
                    await session.send(envelope("alice@direct.test"), MESSAGE)]
        assert session.usable
        await session.quit()
        return outcomes

    first, refused, third = asyncio.run(scenario())
    assert first[0].outcome is Outcome.DELIVERED
    assert refused[0].outcome is Outcome.FAILED
    assert third[0].outcome is Outcome.DELIVERED
    assert world.wait_for(world.peer, "alice@direct.test", before + 2)
    assert peer_logged(world, "mail=3 rcpt=2/3 data=2 rset=1 quit=1")


def test_a_pool_sends_several_messages_over_one_connection(world: OutboundWorld,
                                                           config: TransportConfig) -> None:
    """Connection reuse: one TLS session carries every message, a refused one included;
    per-message results are as without the pool."""
    before = world.peer.count_delivered("alice@direct.test")
    pool = SessionPool()
    pooled = dataclasses.replace(config, pool=pool)

    async def scenario() -> list[list[RecipientResult]]:
        outcomes = [await deliver(envelope(address), MESSAGE, config=pooled)
                    for address in ("alice@direct.test", "alice@direct.test",
                                    "nobody@direct.test", "alice@direct.test")]
        assert pool.idle_count == 1
        await pool.close()
        assert pool.idle_count == 0
        return outcomes

    outcomes = asyncio.run(scenario())
    assert [o[0].outcome for o in outcomes] == [Outcome.DELIVERED, Outcome.DELIVERED,
                                                Outcome.FAILED, Outcome.DELIVERED]
    assert all(o[0].details["tls"].startswith("TLSv1.") for o in outcomes)
    assert world.wait_for(world.peer, "alice@direct.test", before + 3)
    assert peer_logged(world, "starttls=1 mail=4 rcpt=3/4 data=3 rset=1 quit=1")


def test_the_pool_follows_the_outbound_session_settings(world: OutboundWorld,
                                                      config: TransportConfig) -> None:
    """outbound.session_max_messages = 2: four messages take two connections."""
    settings = load_settings(None, {"MAILSTEAD_OUTBOUND__SESSION_MAX_MESSAGES": "2",
                                    "MAILSTEAD_OUTBOUND__SESSION_IDLE_TIMEOUT": "30"})
    pool = session_pool(settings)
    assert (pool.max_uses, pool.idle_timeout) == (2, 30)
    pooled = dataclasses.replace(config, pool=pool)
    before = world.peer.count_delivered("alice@direct.test")

    async def scenario() -> list[list[RecipientResult]]:
        outcomes = [await deliver(envelope("alice@direct.test"), MESSAGE, config=pooled)
                    for _ in range(4)]
        await pool.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert [o[0].outcome for o in outcomes] == [Outcome.DELIVERED] * 4
    assert world.wait_for(world.peer, "alice@direct.test", before + 4)
    assert peer_logged(world, "starttls=1 mail=2 rcpt=2 data=2 quit=1", count=2)


def test_session_max_idle_zero_turns_reuse_off(world: OutboundWorld,
                                               config: TransportConfig) -> None:
    pool = session_pool(load_settings(None, {"MAILSTEAD_OUTBOUND__SESSION_MAX_IDLE": "0"}))
    pooled = dataclasses.replace(config, pool=pool)

    async def scenario() -> int:
        await deliver(envelope("alice@direct.test"), MESSAGE, config=pooled)
        idle = pool.idle_count
        await pool.close()
        return idle

    assert asyncio.run(scenario()) == 0


def test_a_pooled_session_the_peer_closed_is_replaced(world: OutboundWorld,
                                                      config: TransportConfig) -> None:
    handler = _Collect()
    pool = SessionPool()
    pooled = dataclasses.replace(config, pool=pool)

    async def scenario() -> list[list[RecipientResult]]:
        results = []
        for _ in range(2):
            controller = Controller(handler, hostname="::1", port=world.smtp_port)
            controller.start()
            try:
                results.append(await deliver(envelope("carol@v6.test"), MESSAGE,
                                             config=pooled))
                await asyncio.sleep(0.1)
            finally:
                controller.stop()     # drops the idle session the pool holds
        await pool.close()
        return results

    results = asyncio.run(scenario())
    assert [r[0].outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert len(handler.received) == 2


def test_idle_sessions_are_closed_after_the_idle_timeout(world: OutboundWorld,
                                                         config: TransportConfig) -> None:
    pool = SessionPool(idle_timeout=0.2)
    pooled = dataclasses.replace(config, pool=pool)

    async def scenario() -> tuple[int, int]:
        await deliver(envelope("alice@direct.test"), MESSAGE, config=pooled)
        idle = pool.idle_count
        await asyncio.sleep(0.5)
        return idle, pool.idle_count

    assert asyncio.run(scenario()) == (1, 0)
