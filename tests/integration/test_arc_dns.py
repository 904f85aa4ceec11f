"""ARC chain validation against a real authoritative DNS server (Debian's Knot): the
sealers' keys come from Knot through `checks.auth_dns.TxtLookup.blocking`, the lookup every
inbound check shares; key records over 255 bytes, missing keys, a refusing server and a silent one
give the outcomes checks/arc.py documents."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from appliance.checks.arc import verify_chain
from appliance.checks.auth_dns import DnsTempError, TxtLookup
from harness.arc_chain import Key, Signer, two_hop_chain, zone_lines
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {"author": Signer("origin.example"),
            # a 2048-bit key: its record is two character-strings
            "hop1": Signer("fwd.example", key=Key.generate(2048)),
            "hop2": Signer("lists.example")}


@pytest.fixture(scope="module")
def knot(signers: dict[str, Signer],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    lines = zone_lines("example", *signers.values())
    lines.append('junk._domainkey.lists TXT "unrelated"')
    server = KnotDns(tmp_path_factory.mktemp("arc-knot"),
                     {"example": zone_text("example", lines)})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chain(signers: dict[str, Signer]) -> bytes:
    return two_hop_chain(signers["author"], signers["hop1"], signers["hop2"])


def test_long_key_record_is_joined(knot: KnotDns, signers: dict[str, Signer]) -> None:
    lookup = TxtLookup(knot.resolver_spec, 3).blocking()
    assert len(signers["hop1"].key.record) > 255
    assert lookup(b"s1._domainkey.fwd.example.", timeout=5) == signers["hop1"].key.record
    assert lookup(b"nothing._domainkey.fwd.example.", timeout=5) is None
    assert lookup(b"junk._domainkey.lists.example.") == b"unrelated"


def test_chain_passes_with_keys_from_knot(knot: KnotDns, chain: bytes) -> None:
    lookup = TxtLookup(knot.resolver_spec, 3).blocking()
    assert dkim.verify(chain, dnsfunc=lookup) is False       # the list broke DKIM
    outcome = verify_chain(chain, lookup, remote_ip="127.0.0.8")
    assert (outcome.cv, outcome.sealers, outcome.resinfo) == (
        "pass", ("fwd.example", "lists.example"), "arc=pass smtp.remote-ip=127.0.0.8")
    # dkimpy's own verdict agrees
    assert dkim.arc_verify(chain, dnsfunc=lookup)[0] == dkim.CV_Pass


def test_unpublished_sealer_key_fails(knot: KnotDns, signers: dict[str, Signer]) -> None:
    stranger = Signer("stranger.example")            # not in the zone: NXDOMAIN
    resealed = stranger.seal(two_hop_chain(signers["author"], signers["hop1"],
                                           signers["hop2"]), "pass")
    outcome = verify_chain(resealed, TxtLookup(knot.resolver_spec, 3).blocking())
    assert (outcome.cv, outcome.sealers) == ("fail", ())
    assert not outcome.reason.startswith("dns")      # an answer, not a DNS failure


def test_refused_lookup_fails_with_a_dns_reason(knot: KnotDns, chain: bytes) -> None:
    # Knot refuses names outside its zones: the resolver sees a server failure.
    outside = chain.replace(b"d=lists.example;", b"d=lists.elsewhere.test;")
    lookup = TxtLookup(knot.resolver_spec, 3).blocking()
    with pytest.raises(DnsTempError):
        lookup(b"s1._domainkey.lists.elsewhere.test.")
    outcome = verify_chain(outside, lookup)
    assert outcome.cv == "fail"
    assert outcome.reason.startswith("dns: s1._domainkey.lists.elsewhere.test.")


def test_silent_server_times_out_once(chain: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))            # receives, never answers
        spec = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        outcome = verify_chain(chain, TxtLookup(spec, 1).blocking())
        elapsed = time.monotonic() - started
    assert outcome.cv == "fail"
    assert elapsed < 2.5           # one timeout, not one per seal
    assert outcome.reason.startswith("dns:")
