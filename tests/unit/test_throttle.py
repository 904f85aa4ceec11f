"""The login throttle (pure, with a fake clock): lockouts per account and per client,
exponential backoff that always expires, forgotten failures, and known clients."""

from __future__ import annotations

import pytest

from appliance.auth.throttle import Lockout, LoginThrottle, Scope, ThrottlePolicy, client_key

ACCOUNT = "alice@example.test"
IP = "192.0.2.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def policy(**changes: float) -> ThrottlePolicy:
    values = {"max_failures": 3, "max_failures_per_client": 10, "lockout": 60.0,
              "max_lockout": 600.0, "failure_window": 3600.0, "known_client_ttl": 86400.0}
    values.update(changes)
    return ThrottlePolicy(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttle(clock: Clock, **changes: float) -> LoginThrottle:
    return LoginThrottle(policy(**changes), clock)


def fail(t: LoginThrottle, times: int, account: str = ACCOUNT, ip: str = IP) -> None:
    for _ in range(times):
        assert t.check(account, ip) is None
        t.record_failure(account, ip)


def test_failures_below_the_limit_lock_nothing(clock: Clock) -> None:
    t = throttle(clock)
    fail(t, 2)
    assert t.check(ACCOUNT, IP) is None


def test_reaching_the_limit_locks_the_account_for_the_first_lockout(clock: Clock) -> None:
    t = throttle(clock)
    fail(t, 3)
    assert t.check(ACCOUNT, IP) == Lockout(Scope.ACCOUNT, 60.0)
    assert t.check(ACCOUNT, "198.51.100.7") == Lockout(Scope.ACCOUNT, 60.0)   # any client
    assert t.check("bob@example.test", IP) is None                             # other account
    clock.advance(59.9)
    assert t.check(ACCOUNT, IP) is not None
    clock.advance(0.1)
    assert t.check(ACCOUNT, IP) is None


def test_each_further_failure_doubles_the_lockout_up_to_the_cap(clock: Clock) -> None:
    t = throttle(clock)
    fail(t, 3)
    lengths = []
    for _ in range(6):
        lockout = t.check(ACCOUNT, IP)
        assert lockout is not None
        lengths.append(lockout.retry_after)
        clock.advance(lockout.retry_after)
        fail(t, 1)
    assert lengths == [60, 120, 240, 480, 600, 600]


def test_the_lockout_always_expires_even_after_very_many_failures(clock: Clock) -> None:
    """An attacker must not be able to lock the real user out for good."""
    t = throttle(clock)
    for _ in range(500):
        lockout = t.check(ACCOUNT, IP)
        if lockout is not None:
            assert lockout.retry_after <= 600
            clock.advance(lockout.retry_after)
        t.record_failure(ACCOUNT, IP)
    clock.advance(600)
    assert t.check(ACCOUNT, "203.0.113.5") is None


def test_failures_are_forgotten_after_a_quiet_window(clock: Clock) -> None:
    t = throttle(clock, failure_window=100.0)
    fail(t, 2)
    clock.advance(101)
    fail(t, 2)                   # 1 and 2 of a new count: still no lockout
    assert t.check(ACCOUNT, IP) is None


def test_the_window_counts_from_the_end_of_a_lockout(clock: Clock) -> None:
    """Backoff survives lockouts longer than the window: the next failure still doubles."""
    t = throttle(clock, failure_window=100.0, lockout=500.0, max_lockout=5000.0)
    fail(t, 3)
    clock.advance(550)           # past the end of the lockout by less than the window
    fail(t, 1)
    lockout = t.check(ACCOUNT, IP)
    assert lockout is not None
    assert lockout.retry_after == 1000


def test_a_success_clears_the_account_count_when_not_locked(clock: Clock) -> None:
    t = throttle(clock)
    fail(t, 2)
    t.record_success(ACCOUNT, IP)
    fail(t, 2, ip="198.51.100.7")
    assert t.check(ACCOUNT, "198.51.100.7") is None


def test_one_client_failing_on_many_accounts_is_locked(clock: Clock) -> None:
    """Password spraying: a few tries at many accounts from one address."""
    t = throttle(clock)
    for number in range(10):
        fail(t, 1, account=f"user{number}@example.test")
    assert t.check("other@example.test", IP) == Lockout(Scope.CLIENT, 60.0)
    assert t.check("other@example.test", "198.51.100.7") is None


def test_a_known_client_is_not_held_back_by_the_account_lockout(clock: Clock) -> None:
    t = throttle(clock)
    t.record_success(ACCOUNT, IP)                       # the user's own computer
    fail(t, 3, ip="203.0.113.66")                       # an attacker elsewhere
    assert t.check(ACCOUNT, "203.0.113.66") == Lockout(Scope.ACCOUNT, 60.0)
    assert t.check(ACCOUNT, IP) is None


def test_a_known_client_success_during_an_attack_keeps_the_lock(clock: Clock) -> None:
    t = throttle(clock)
    t.record_success(ACCOUNT, IP)
    fail(t, 3, ip="203.0.113.66")
    t.record_success(ACCOUNT, IP)
    assert t.check(ACCOUNT, "203.0.113.66") is not None


def test_a_known_client_is_still_subject_to_its_own_client_lock(clock: Clock) -> None:
    t = throttle(clock, max_failures_per_client=3, max_failures=100)
    t.record_success(ACCOUNT, IP)
    fail(t, 3)
    assert t.check(ACCOUNT, IP) == Lockout(Scope.CLIENT, 60.0)


def test_known_clients_are_forgotten_after_their_ttl(clock: Clock) -> None:
    t = throttle(clock, known_client_ttl=100.0, failure_window=10_000.0)
    t.record_success(ACCOUNT, IP)
    clock.advance(101)
    fail(t, 3, ip="203.0.113.66")
    assert t.check(ACCOUNT, IP) is not None


def test_known_clients_can_be_turned_off(clock: Clock) -> None:
    t = throttle(clock, known_client_ttl=0.0)
    t.record_success(ACCOUNT, IP)
    fail(t, 3, ip="203.0.113.66")
    assert t.check(ACCOUNT, IP) is not None


def test_tables_are_bounded(clock: Clock) -> None:
    t = LoginThrottle(ThrottlePolicy(3, 10**9, 60, 600, 3600, 86400, max_entries=50), clock)
    for number in range(1000):
        t.record_failure(f"user{number}@example.test", f"10.0.{number // 256}.{number % 256}")
    assert t.tracked() == (50, 50)


def test_ipv6_clients_count_per_64() -> None:
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("unix-socket") == "unix-socket"


def test_one_ipv6_host_cannot_escape_the_client_limit_by_changing_address(clock: Clock) -> None:
    t = throttle(clock, max_failures_per_client=3, max_failures=100)
    for number in range(3):
        fail(t, 1, account=f"u{number}@example.test", ip=f"2001:db8::{number + 1:x}")
    assert t.check("x@example.test", "2001:db8::ffff") == Lockout(Scope.CLIENT, 60.0)
