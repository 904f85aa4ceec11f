"""Per-client-address rate limits: connections and messages per minute, IPv6 /64 keys,
exempt networks, and connection admission in the `ConnectionTracker`."""

from __future__ import annotations

import logging

import pytest

from appliance.checks.ratelimit_clients import ClientRateLimits, client_key, parse_networks
from appliance.smtp import replies
from appliance.smtp.connections import ConnectionTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Session:
    in_transaction = False

    def close_transport(self, reply: str | None = None) -> None:
        pass


def test_client_keys() -> None:
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("2001:db8:0:1:aaaa::1") == "2001:db8:0:1::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("garbage") == "garbage"
    assert client_key("fe80::1%eth0") == "fe80::/64"          # a link-local peer's zone


def test_networks_parse() -> None:
    assert [str(n) for n in parse_networks("127.0.0.0/8, ::1,192.0.2.7 ,")] == [
        "127.0.0.0/8", "::1/128", "192.0.2.7/32"]
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks("localhost")


def test_message_rate_per_minute() -> None:
    clock = Clock()
    limits = ClientRateLimits(0, 3, clock=clock)
    assert [limits.admit_message("192.0.2.1") for _ in range(4)] == [
        None, None, None, replies.MESSAGE_RATE_EXCEEDED]
    assert limits.admit_message("192.0.2.2") is None          # counted per client
    assert limits.admit_connection("192.0.2.1") is None       # 0: that limit is off
    clock.now += 60.5
    assert limits.admit_message("192.0.2.1") is None          # the window moved on


def test_ipv6_clients_count_by_slash_64() -> None:
    limits = ClientRateLimits(2, 0, clock=Clock())
    assert limits.admit_connection("2001:db8::1") is None
    assert limits.admit_connection("2001:db8::2") is None
    assert limits.admit_connection("2001:db8::ffff") == replies.CONNECTION_RATE_EXCEEDED
    assert limits.admit_connection("2001:db8:0:1::1") is None


def test_exempt_networks_are_never_limited() -> None:
    limits = ClientRateLimits(1, 1, parse_networks("127.0.0.0/8, 2001:db8::/32"), Clock())
    for _ in range(5):
        assert limits.admit_connection("127.0.0.5") is None
        assert limits.admit_message("2001:db8::9") is None
    assert limits.admit_connection("192.0.2.1") is None
    assert limits.admit_connection("192.0.2.1") == replies.CONNECTION_RATE_EXCEEDED


def test_idle_clients_are_forgotten() -> None:
    clock = Clock()
    limits = ClientRateLimits(5, 5, clock=clock)
    for i in range(100):
        limits.admit_connection(f"192.0.2.{i}")
    clock.now += 61
    limits.admit_connection("198.51.100.1")       # a window later: the others are pruned
    assert len(limits._connections or ()) == 1


def test_tracker_refuses_connections_over_the_rate() -> None:
    clock = Clock()
    tracker = ConnectionTracker(100, 100, ClientRateLimits(2, 0, clock=clock))
    sessions = [Session() for _ in range(3)]
    refusals = [tracker.admit(s, "192.0.2.1") for s in sessions]
    assert refusals == [None, None, replies.CONNECTION_RATE_EXCEEDED]
    for session in sessions:
        tracker.release(session)
    assert tracker.live == 0
    assert tracker.admit(Session(), "192.0.2.1") == replies.CONNECTION_RATE_EXCEEDED
    clock.now += 61
    assert tracker.admit(Session(), "192.0.2.1") is None
    plain = ConnectionTracker(100, 100)                       # IMAP, POP3, submission
    assert all(plain.admit(Session(), "192.0.2.1") is None for _ in range(10))


def test_a_flood_is_logged_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limits = ClientRateLimits(1, 0, clock=clock)
    with caplog.at_level(logging.INFO, logger="mailstead"):
        for _ in range(50):
            limits.admit_connection("192.0.2.1")
        clock.now += 61
        for _ in range(3):
            limits.admit_connection("192.0.2.1")
    lines = [r for r in caplog.records if r.getMessage() == "smtp.connection_rate_exceeded"]
    assert len(lines) == 2
