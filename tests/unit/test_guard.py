"""The login guard: normalisation, lockouts, verification in threads with a cap and a bounded
queue, the event loop never blocked, failures delayed, and one log event without the secret."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from appliance.auth.guard import LoginGuard, LoginResult, Outcome, normalise_username
from appliance.auth.throttle import LoginThrottle, ThrottlePolicy
from appliance.core.log import JsonLineFormatter

PASSWORD = "correct horse battery"
T = TypeVar("T")


class FakeVerifier:
    """Accounts and passwords in a dict; records every call and the threads it ran in."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.accounts = {"alice@example.test": PASSWORD, "josé@xn--exmple-cua.test": PASSWORD}
        self.calls: list[str] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail = fail
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, address: str, password: str) -> bool:
        with self._lock:
            self.calls.append(address)
            self.threads.add(threading.current_thread().name)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.delay)
            if self.fail:
                raise RuntimeError("database is locked")
            return self.accounts.get(address.casefold()) == password   # as the directory does
        finally:
            with self._lock:
                self.running -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_guard(verifier: FakeVerifier, clock: Clock | None = None, *, max_concurrent: int = 4,
               max_pending: int = 64, failure_delay: float = 0.0) -> LoginGuard:
    policy = ThrottlePolicy(max_failures=3, max_failures_per_client=20, lockout=60,
                            max_lockout=3600, failure_window=3600, known_client_ttl=86400)
    return LoginGuard(verifier, LoginThrottle(policy, clock or Clock()),
                      max_concurrent=max_concurrent, max_pending=max_pending,
                      failure_delay=failure_delay)


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()
    return asyncio.run(main())


def login(guard: LoginGuard, username: str, password: str = PASSWORD,
          ip: str = "192.0.2.1") -> LoginResult:
    return run(lambda: guard.login(username, password, client_ip=ip, protocol="test"))


# -- normalisation ---------------------------------------------------------------------------

@pytest.mark.parametrize("username", ["alice@example.test", "ALICE@EXAMPLE.TEST",
                                      " Alice@Example.Test ", "alice@example.test."])
def test_spellings_of_one_address_name_one_account(username: str) -> None:
    address = normalise_username(username)
    assert address is not None
    assert address.key == "alice@example.test"


def test_unicode_usernames_are_nfc_and_idna_normalised() -> None:
    composed = normalise_username("jos\u00e9@ex\u00e4mple.test")
    decomposed = normalise_username("jose\u0301@exa\u0308mple.test")
    assert composed is not None
    assert decomposed is not None
    assert composed.key == decomposed.key == "josé@xn--exmple-cua.test"


@pytest.mark.parametrize("username", ["alice", "", "@example.test", "a@b@c", "alice@[127.0.0.1]"])
def test_usernames_that_are_not_addresses(username: str) -> None:
    assert normalise_username(username) is None


# -- results ---------------------------------------------------------------------------------

def test_the_right_password_is_accepted_with_the_normalised_account() -> None:
    verifier = FakeVerifier()
    result = login(make_guard(verifier), "Alice@EXAMPLE.test")
    assert result == LoginResult(Outcome.ACCEPTED, account="alice@example.test")
    assert verifier.calls == ["Alice@example.test"]


def test_decomposed_unicode_username_logs_in() -> None:
    assert login(make_guard(FakeVerifier()), "jose\u0301@exa\u0308mple.test").ok


def test_wrong_password_unknown_and_malformed_users_are_all_verified_and_rejected() -> None:
    """Constant time: every kind of failure costs one verification."""
    verifier = FakeVerifier()
    guard = make_guard(verifier)
    for username, password in (("alice@example.test", "wrong"), ("nobody@example.test", "x"),
                               ("not an address", "x")):
        assert login(guard, username, password).outcome is Outcome.REJECTED
    assert len(verifier.calls) == 3


def test_lockout_after_max_failures_skips_verification() -> None:
    verifier = FakeVerifier()
    clock = Clock()
    guard = make_guard(verifier, clock)
    for _ in range(3):
        assert login(guard, "alice@example.test", "wrong").outcome is Outcome.REJECTED
    locked = login(guard, "alice@example.test", PASSWORD, ip="198.51.100.1")
    assert locked.outcome is Outcome.LOCKED
    assert locked.retry_after == 60
    assert len(verifier.calls) == 3                     # no verification while locked
    clock.now += 60
    assert login(guard, "alice@example.test", PASSWORD, ip="198.51.100.1").ok


def test_lockout_counts_spellings_of_the_account_together() -> None:
    guard = make_guard(FakeVerifier())
    for spelling in ("alice@example.test", "ALICE@example.test", "Alice@Example.Test"):
        login(guard, spelling, "wrong")
    assert login(guard, "alice@EXAMPLE.TEST").outcome is Outcome.LOCKED


def test_unknown_accounts_lock_like_real_ones() -> None:
    """A lockout must not reveal which accounts exist."""
    guard = make_guard(FakeVerifier())
    for _ in range(3):
        login(guard, "nobody@example.test", "wrong")
    assert login(guard, "nobody@example.test", "wrong").outcome is Outcome.LOCKED


def test_verification_errors_are_temporary_and_not_counted() -> None:
    verifier = FakeVerifier(fail=True)
    guard = make_guard(verifier)
    for _ in range(5):
        assert login(guard, "alice@example.test").outcome is Outcome.UNAVAILABLE
    verifier.fail = False
    assert login(guard, "alice@example.test").ok


# -- threads, the cap and the queue ----------------------------------------------------------

def test_verification_runs_in_auth_threads_and_the_loop_keeps_running() -> None:
    verifier = FakeVerifier(delay=0.3)
    guard = make_guard(verifier)

    async def main() -> tuple[LoginResult, int]:
        ticks = 0
        task = asyncio.create_task(guard.login("alice@example.test", PASSWORD,
                                               client_ip="192.0.2.1", protocol="test"))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return await task, ticks

    result, ticks = asyncio.run(main())
    assert result.ok
    assert ticks >= 10                          # the event loop ran during the verification
    assert all(name.startswith("auth") for name in verifier.threads)


def test_at_most_max_concurrent_verifications_run_at_once() -> None:
    verifier = FakeVerifier(delay=0.05)
    guard = make_guard(verifier, max_concurrent=2)

    async def main() -> list[LoginResult]:
        return list(await asyncio.gather(*(
            guard.login(f"user{n}@example.test", PASSWORD, client_ip=f"192.0.2.{n}",
                        protocol="test") for n in range(8))))

    assert len(asyncio.run(main())) == 8
    assert verifier.most_at_once == 2


def test_logins_beyond_the_pending_limit_fail_temporarily() -> None:
    verifier = FakeVerifier(delay=0.1)
    guard = make_guard(verifier, max_concurrent=1, max_pending=2)

    async def main() -> list[Outcome]:
        results = await asyncio.gather(*(
            guard.login(f"user{n}@example.test", PASSWORD, client_ip=f"192.0.2.{n}",
                        protocol="test") for n in range(5)))
        return [r.outcome for r in results]

    outcomes = asyncio.run(main())
    assert outcomes.count(Outcome.REJECTED) == 2          # verified (no such users)
    assert outcomes.count(Outcome.UNAVAILABLE) == 3       # turned away, not counted
    assert len(verifier.calls) == 2


def test_parallel_guesses_cannot_outrun_the_lockout() -> None:
    """Ten wrong passwords at once, from ten clients: only max_failures are verified."""
    verifier = FakeVerifier(delay=0.02)
    guard = make_guard(verifier)

    async def main() -> list[Outcome]:
        results = await asyncio.gather(*(
            guard.login("alice@example.test", f"guess {n}", client_ip=f"198.51.100.{n}",
                        protocol="test") for n in range(10)))
        return [r.outcome for r in results]

    outcomes = asyncio.run(main())
    assert outcomes.count(Outcome.REJECTED) == 3
    assert outcomes.count(Outcome.LOCKED) == 7
    assert len(verifier.calls) == 3
    assert len(guard._serial) == 0                       # no lock left behind


def test_failures_are_delayed_and_successes_are_not() -> None:
    guard = make_guard(FakeVerifier(), failure_delay=0.3)
    start = time.monotonic()
    login(guard, "alice@example.test")
    assert time.monotonic() - start < 0.25
    start = time.monotonic()
    login(guard, "alice@example.test", "wrong")
    assert time.monotonic() - start >= 0.3


# -- the log ---------------------------------------------------------------------------------

def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [vars(r) for r in caplog.records if r.getMessage() == "auth.login"]


def test_one_event_per_attempt_with_username_client_result_and_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailstead")
    clock = Clock()
    guard = make_guard(FakeVerifier(), clock)
    login(guard, "Alice@Example.Test")
    for _ in range(3):
        login(guard, "alice@example.test", "wrong", ip="203.0.113.9")
    login(guard, "alice@example.test", "wrong", ip="203.0.113.9")
    found = [(e["username"], e["client"], e["result"], e["reason"], e["levelname"])
             for e in events(caplog)]
    assert found == [
        ("alice@example.test", "192.0.2.1", "accepted", "ok", "INFO"),
        *[("alice@example.test", "203.0.113.9", "rejected", "invalid_credentials",
           "WARNING")] * 3,
        ("alice@example.test", "203.0.113.9", "locked", "account_locked", "WARNING"),
    ]


def test_the_secret_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "S3cret-Never-Logged"
    guard = make_guard(FakeVerifier(fail=False))
    login(guard, "alice@example.test", secret)
    login(guard, secret, secret)               # the password typed into the username field
    broken = make_guard(FakeVerifier(fail=True))
    login(broken, "alice@example.test", secret)
    formatter = JsonLineFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert "auth.login" in text
    assert secret not in text
    assert secret.lower() not in text
    assert '"username": "(malformed)"' in text
