"""MTA-STS (RFC 8461) end to end: Knot serves the `_mta-sts` TXT records, an HTTPS server
with a test-CA certificate serves the policies, Postfix peers present good and bad
certificates. `enforce` must defer (never bounce) what it cannot send securely."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.outbound import delivery_replies as dr
from appliance.outbound.transport import TransportConfig, deliver
from appliance.outbound.types import (
    OutboundEnvelope,
    OutboundRecipient,
    Outcome,
    RecipientResult,
)
from peers.https import Answer
from peers.outbound_world import PEER_IP, ROGUE_IP, OutboundWorld, default_policies, outbound_world

pytestmark = pytest.mark.timeout(120)
MESSAGE = b"Subject: mta-sts\n\nsecure or not at all\n"


@pytest.fixture(scope="module")
def world() -> Iterator[OutboundWorld]:
    with outbound_world("mtasts") as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_policies(world: OutboundWorld) -> None:
    """Each test starts from the default policies and may change them."""
    world.policies.answers.clear()
    world.policies.answers.update(default_policies())
    world.policies.requests.clear()


@pytest.fixture
def config(world: OutboundWorld, tmp_path: Path) -> TransportConfig:
    return world.config(tmp_path / "mta-sts")


def send(address: str, config: TransportConfig) -> RecipientResult:
    env = OutboundEnvelope("Q1", "sender@example.org", (OutboundRecipient(address),),
                           len(MESSAGE))
    (result,) = asyncio.run(deliver(env, MESSAGE, config=config))
    return result


def test_enforce_with_a_valid_certificate_delivers(world: OutboundWorld,
                                                   config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@sts-enforce.test")
    result = send("alice@sts-enforce.test", config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.details["mta_sts"] == "enforce"
    assert result.details["tls_verified"] == "true"
    assert world.policies.requests == ["mta-sts.sts-enforce.test"]
    assert world.wait_for(world.peer, "alice@sts-enforce.test", before + 1)


def test_enforce_with_a_certificate_for_another_name_is_deferred(
        world: OutboundWorld, config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@sts-badname.test")
    result = send("alice@sts-badname.test", config)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith("451 4.7.5 MTA-STS policy of sts-badname.test: TLS with "
                                   f"mx.sts-badname.test[{PEER_IP}] failed: Hostname mismatch")
    assert world.peer.count_delivered("alice@sts-badname.test") == before


def test_enforce_with_an_untrusted_ca_is_deferred(world: OutboundWorld,
                                                  config: TransportConfig) -> None:
    result = send("alice@sts-untrusted.test", config)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply.startswith(
        f"451 4.7.5 MTA-STS policy of sts-untrusted.test: TLS with "
        f"mx.sts-untrusted.test[{ROGUE_IP}] failed: ")
    assert "certificate" in result.reply
    assert world.rogue.count_delivered("alice@sts-untrusted.test") == 0


def test_enforce_when_no_mx_matches_the_policy_is_deferred(config: TransportConfig) -> None:
    result = send("alice@sts-mismatch.test", config)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply == dr.render(dr.STS_NO_MATCHING_MX, domain="sts-mismatch.test",
                                     hosts="mx.sts-mismatch.test")


def test_testing_mode_delivers_despite_a_bad_certificate(world: OutboundWorld,
                                                         config: TransportConfig) -> None:
    before = world.peer.count_delivered("alice@sts-testing.test")
    result = send("alice@sts-testing.test", config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.details["mta_sts"] == "testing"
    assert result.details["tls_verified"] == "false"    # encrypted, verification failed
    assert world.wait_for(world.peer, "alice@sts-testing.test", before + 1)


def test_a_cached_enforce_policy_holds_while_the_policy_host_is_gone(
        world: OutboundWorld, config: TransportConfig) -> None:
    assert send("alice@sts-badname.test", config).outcome is Outcome.DEFERRED
    cached = config.mta_sts_dir / "sts-badname.test.json"
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert json.loads(cached.read_text())["mode"] == "enforce"
    world.policies.answers.clear()            # the policy host now answers 404
    world.policies.requests.clear()
    assert send("alice@sts-badname.test", config).outcome is Outcome.DEFERRED
    assert world.policies.requests == []      # same TXT id, fresh cache: nothing fetched


def test_a_new_policy_id_is_fetched_again(world: OutboundWorld,
                                          config: TransportConfig) -> None:
    cache = config.mta_sts_dir / "sts-badname.test.json"
    assert send("alice@sts-badname.test", config).outcome is Outcome.DEFERRED
    stale = json.loads(cache.read_text())
    cache.write_text(json.dumps({**stale, "id": "0", "mode": "enforce"}))   # an older id
    world.policies.requests.clear()
    world.policies.answers["mta-sts.sts-badname.test"] = Answer(
        b"version: STSv1\nmode: none\nmax_age: 600\n")
    result = send("alice@sts-badname.test", config)
    assert world.policies.requests == ["mta-sts.sts-badname.test"]
    assert result.outcome is Outcome.DELIVERED, result       # the new policy says none
    assert result.details["mta_sts"] == "none"


@pytest.mark.parametrize("answer", [
    Answer(b"not found", 404),
    Answer(b"version: STSv1\nmode: enforce\nmx: x.test\nmax_age: 60\n", 200, "text/html"),
    Answer(b"version: STSv1\nmode: sometimes\nmx: x.test\nmax_age: 60\n"),
    Answer(b"", 301),
])
def test_no_usable_policy_and_no_cache_means_no_policy(
        world: OutboundWorld, config: TransportConfig, answer: Answer) -> None:
    world.policies.answers["mta-sts.sts-badname.test"] = answer
    result = send("alice@sts-badname.test", config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.details["mta_sts"] == "none"


def test_a_policy_host_with_an_untrusted_certificate_gives_no_policy(
        world: OutboundWorld, tmp_path: Path) -> None:
    config = world.config(tmp_path, ca_file=world.rogue_ca.write_cert(tmp_path / "rogue.pem"))
    result = send("alice@sts-badname.test", config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.details["mta_sts"] == "none"
    assert result.details["tls_verified"] == "false"


def test_mta_sts_can_be_turned_off(world: OutboundWorld, tmp_path: Path) -> None:
    result = send("alice@sts-badname.test", world.config(tmp_path, mta_sts=False))
    assert result.outcome is Outcome.DELIVERED, result
    assert world.policies.requests == []


def test_an_unreadable_ca_file_defers_nothing_and_fetches_nothing(
        world: OutboundWorld, tmp_path: Path) -> None:
    """A broken `outbound.ca_file` is an admin error: policies cannot be fetched (so none
    applies) and opportunistic TLS goes on; nothing raises out of the transport."""
    config = world.config(tmp_path, ca_file=tmp_path / "missing.pem")
    result = send("alice@sts-enforce.test", config)
    assert result.outcome is Outcome.DELIVERED, result
    assert result.details["mta_sts"] == "none"
