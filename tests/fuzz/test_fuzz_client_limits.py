"""Fuzz the client-address parsers of the rate limits and greylisting: network lists parse
or raise ValueError only; any peer address text gives a key and a greylisting network."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.checks.greylist import client_network
from appliance.checks.ratelimit_clients import ClientRateLimits, client_key, parse_networks

ADDRESSES = st.ip_addresses().map(str) | st.text(max_size=50)


@given(st.text(max_size=100))
@example("127.0.0.0/8, ::1")
@example("10.0.0.1/8")
@example("::ffff:1.2.3.4/120,")
def test_network_lists_parse_or_raise_value_error(text: str) -> None:
    try:
        networks = parse_networks(text)
    except ValueError:
        return
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
               for n in networks)


@given(ADDRESSES)
@example("[::1]")
@example("::ffff:192.0.2.1")
def test_any_peer_address_gives_a_key_and_a_network(text: str) -> None:
    assert isinstance(client_key(text), str)
    network = client_network(text)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return
    parsed = ipaddress.ip_network(network)
    assert parsed.prefixlen in (24, 64)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    assert address in parsed


@given(st.lists(ADDRESSES, max_size=30))
def test_limits_never_raise_and_count_each_client(clients: list[str]) -> None:
    limits = ClientRateLimits(1, 1, clock=lambda: 0.0)
    seen: set[str] = set()
    for client in clients:
        refused = limits.admit_connection(client) is not None
        assert refused == (client_key(client) in seen)
        seen.add(client_key(client))
