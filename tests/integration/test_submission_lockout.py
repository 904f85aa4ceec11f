"""Failed logins against the real engine: lockout after N failures per account, expiry with
backoff, a per-address limit across accounts, known clients, and what the log says.

Different loopback source addresses (127.0.0.0/8 is all local) stand for different clients.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.submission import PASSWORD, auth_plain, implicit_tls_wire, starttls_wire

LOCKOUT = 2
NewAccount = Callable[[str], str]      # the `new_account` fixture
MX_SETTINGS = {"auth__failure_delay_ms": 0, "auth__max_failures": 3,
               "auth__max_failures_per_ip": 6, "auth__lockout_seconds": LOCKOUT,
               "auth__lockout_max_seconds": 2 * LOCKOUT, "auth__failure_window": 600}
_hosts = itertools.count(10)


def new_source() -> str:
    """A loopback address no other test used: a fresh client."""
    return f"127.0.0.{next(_hosts)}"


def try_login(mx: EngineProcess, user: str, password: str, source: str) -> str:
    with starttls_wire(mx, source) as wire:
        return str(auth_plain(wire, user, password))


def test_account_is_locked_after_max_failures_and_the_lock_expires(mx: EngineProcess,
                                                                   new_account: NewAccount) -> None:
    user = new_account("locked")
    attacker, other = new_source(), new_source()
    for _ in range(3):
        assert try_login(mx, user, "guess", attacker) == replies.AUTH_FAILED
    # Locked for every unknown client, the right password included, on both ports.
    assert try_login(mx, user, PASSWORD, attacker) == replies.AUTH_LOCKED
    assert try_login(mx, user, PASSWORD, other) == replies.AUTH_LOCKED
    with implicit_tls_wire(mx, other) as wire:
        assert str(auth_plain(wire, user)) == replies.AUTH_LOCKED
    time.sleep(LOCKOUT + 0.2)
    assert try_login(mx, user, PASSWORD, other) == replies.AUTH_SUCCESSFUL


def test_backoff_doubles_up_to_the_cap(mx: EngineProcess, new_account: NewAccount) -> None:
    user = new_account("backoff")
    source = new_source()
    for _ in range(3):
        try_login(mx, user, "guess", source)
    time.sleep(LOCKOUT + 0.2)
    assert try_login(mx, user, "guess", source) == replies.AUTH_FAILED   # locks for 2x
    time.sleep(LOCKOUT + 0.2)
    assert try_login(mx, user, PASSWORD, source) == replies.AUTH_LOCKED  # still locked
    time.sleep(LOCKOUT)
    assert try_login(mx, user, PASSWORD, source) == replies.AUTH_SUCCESSFUL


def test_other_accounts_are_not_affected(mx: EngineProcess, new_account: NewAccount) -> None:
    victim, bystander = new_account("victim"), new_account("bystander")
    source = new_source()
    for _ in range(3):
        try_login(mx, victim, "guess", source)
    assert try_login(mx, bystander, PASSWORD, new_source()) == replies.AUTH_SUCCESSFUL


def test_one_address_failing_across_many_accounts_is_locked(mx: EngineProcess,
                                                            new_account: NewAccount) -> None:
    """Password spraying: one or two guesses per account, many accounts, one address."""
    sprayer = new_source()
    for number in range(6):
        assert try_login(mx, f"user{number}@example.test", "Summer2024!", sprayer) == (
            replies.AUTH_FAILED)
    fresh = new_account("fresh")
    assert try_login(mx, fresh, PASSWORD, sprayer) == replies.AUTH_LOCKED
    assert try_login(mx, fresh, PASSWORD, new_source()) == replies.AUTH_SUCCESSFUL


def test_a_known_client_is_not_locked_out_by_an_attacker(mx: EngineProcess,
                                                         new_account: NewAccount) -> None:
    user = new_account("known")
    home, attacker = new_source(), new_source()
    assert try_login(mx, user, PASSWORD, home) == replies.AUTH_SUCCESSFUL
    for _ in range(4):
        try_login(mx, user, "guess", attacker)
    assert try_login(mx, user, PASSWORD, attacker) == replies.AUTH_LOCKED
    assert try_login(mx, user, PASSWORD, home) == replies.AUTH_SUCCESSFUL


def test_many_failures_in_one_session_lock_too(mx: EngineProcess, new_account: NewAccount) -> None:
    user = new_account("session")
    with starttls_wire(mx, new_source()) as wire:
        got = [str(auth_plain(wire, user, f"guess {n}")) for n in range(5)]
    assert got == [replies.AUTH_FAILED] * 3 + [replies.AUTH_LOCKED] * 2


def test_the_log_records_each_attempt_without_the_password(mx: EngineProcess,
                                                           new_account: NewAccount) -> None:
    user = new_account("logged")
    source = new_source()
    secrets = [f"guess-{n}-never-logged" for n in range(4)]
    for secret in secrets:
        try_login(mx, user, secret, source)
    text = mx.log_text()
    for secret in secrets:
        assert secret not in text
    mine = [e for e in map(json.loads, text.splitlines())
            if e.get("event") == "auth.login" and e.get("username") == user]
    assert [(e["client"], e["result"], e["reason"]) for e in mine] == [
        (source, "rejected", "invalid_credentials")] * 3 + [
        (source, "locked", "account_locked")]
    assert mine[-1]["retry_after"] > 0
