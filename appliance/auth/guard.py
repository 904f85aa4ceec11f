"""The one login guard (STYLE.md practice 10): every password login goes through `login`.

SMTP AUTH, IMAP, POP3, DAV and the console all call `LoginGuard.login`, a final method in
the manner of Radicale's `BaseAuth.login`: the policy lives here once, and only the verifier
(where passwords are kept) is plugged in. In order, it normalises the username (an address:
NFC, IDNA domain, case-insensitive), asks the throttle whether the account or the client is
locked out (one attempt at a time per account and per client, so that parallel guesses
cannot outrun the count), verifies the password in a worker thread (argon2id takes ~50 ms
and must not stall the event loop; at most `max_concurrent` run at once and a bounded queue
waits behind them), records the result, logs one event that never holds the password, and
delays failures. Unknown, disabled and malformed usernames still cost one full verification (the
verifier checks a dummy hash), so timing says nothing about which accounts exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, final

from appliance.auth.throttle import Lockout, LoginThrottle, ThrottlePolicy, client_key
from appliance.core import log
from appliance.core.addresses import Address, AddressError, parse_address
from appliance.settings import Settings

MAX_KEY_LENGTH = 320      # throttle key for a username that is not an address


class PasswordVerifier(Protocol):
    """Checks a password; called in a worker thread, so it may block (and must be safe to)."""

    def verify(self, address: str, password: str) -> bool: ...


class Outcome(enum.Enum):
    """What a login attempt came to; each protocol maps it onto its own reply."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"          # wrong password, unknown or disabled account
    LOCKED = "locked"              # too many failures: try again after `retry_after`
    UNAVAILABLE = "unavailable"    # overloaded or an internal error: a temporary failure


@dataclass(frozen=True)
class LoginResult:
    """The guard's answer. `account` is the normalised address (`Address.key`) on success."""

    outcome: Outcome
    account: str | None = None
    retry_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


def normalise_username(username: str) -> Address | None:
    """The account address a username names, or None if it is not a valid address.

    Unicode NFC first, so that composed and decomposed spellings name the same account;
    then the address rules (IDNA 2008 domain, lower case); local parts compare case-folded.
    """
    try:
        return parse_address(unicodedata.normalize("NFC", username.strip()))
    except AddressError:
        return None


class LoginGuard:
    """Rate-limited, logged, constant-time password logins for every protocol."""

    def __init__(self, verifier: PasswordVerifier, throttle: LoginThrottle, *,
                 max_concurrent: int, max_pending: int, failure_delay: float) -> None:
        self._verifier = verifier
        self._throttle = throttle
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="auth")
        self._max_pending = max_pending
        self._pending = 0
        self._failure_delay = failure_delay
        self._serial = _KeyedLocks()

    @classmethod
    def from_settings(cls, settings: Settings, verifier: PasswordVerifier,
                      clock: Callable[[], float] = time.monotonic) -> LoginGuard:
        """A guard with the limits of the `auth.*` settings."""
        policy = ThrottlePolicy(
            max_failures=settings.get_int("auth.max_failures"),
            max_failures_per_client=settings.get_int("auth.max_failures_per_ip"),
            lockout=settings.get_int("auth.lockout_seconds"),
            max_lockout=settings.get_int("auth.lockout_max_seconds"),
            failure_window=settings.get_int("auth.failure_window"),
            known_client_ttl=settings.get_int("auth.known_client_days") * 86400)
        return cls(verifier, LoginThrottle(policy, clock),
                   max_concurrent=settings.get_int("auth.max_concurrent_verifications"),
                   max_pending=settings.get_int("auth.max_pending_verifications"),
                   failure_delay=settings.get_int("auth.failure_delay_ms") / 1000)

    @final
    async def login(self, username: str, password: str, *, client_ip: str,
                    protocol: str) -> LoginResult:
        """Check one username and password from `client_ip`; never raises for bad input.

        Args:
            username: as the client sent it (an address, any case, Unicode or punycode).
            password: the secret; it is passed to the verifier and to nothing else.
            client_ip: the peer's address, counted per address (IPv6: per /64).
            protocol: for the log ("smtp", "imap", ...).
        """
        address = normalise_username(username)
        key = address.key if address is not None else username.casefold()[:MAX_KEY_LENGTH]
        # One attempt at a time per account and per client: parallel guesses would all pass
        # the check before the first failure is counted.
        async with self._serial.hold(f"account:{key}"), \
                self._serial.hold(f"client:{client_key(client_ip)}"):
            lockout = self._throttle.check(key, client_ip)
            if lockout is not None:
                result = LoginResult(Outcome.LOCKED, retry_after=lockout.retry_after)
            else:
                result = await self._verified(address, username, password, key, client_ip)
        _log(result, address, client_ip, protocol, lockout)
        if result.outcome in (Outcome.REJECTED, Outcome.LOCKED) and self._failure_delay:
            await asyncio.sleep(self._failure_delay)
        return result

    def close(self) -> None:
        """Stop the verification threads (at engine shutdown)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _verified(self, address: Address | None, username: str, password: str,
                        key: str, client_ip: str) -> LoginResult:
        # A malformed username is verified too (against the dummy hash): same cost.
        ok = await self._verify(str(address) if address is not None else username, password)
        if ok is None:
            return LoginResult(Outcome.UNAVAILABLE)
        if ok and address is not None:
            self._throttle.record_success(key, client_ip)
            return LoginResult(Outcome.ACCEPTED, account=address.key)
        self._throttle.record_failure(key, client_ip)
        return LoginResult(Outcome.REJECTED)

    async def _verify(self, address: str, password: str) -> bool | None:
        """Run the verifier in a worker thread; None if the queue is full or it failed."""
        if self._pending >= self._max_pending:
            return None
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._verifier.verify,
                                              address, password)
        except Exception as exc:     # a broken database must not become "wrong password"
            log.error("auth.verify_failed", exc)
            return None
        finally:
            self._pending -= 1


class _KeyedLocks:
    """An asyncio lock per key, made on first use and dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _log(result: LoginResult, address: Address | None, client_ip: str, protocol: str,
         lockout: Lockout | None) -> None:
    """One event per attempt. A username that is not an address is not logged as typed:
    people type their password into the username field."""
    reason = {Outcome.ACCEPTED: "ok", Outcome.REJECTED: "invalid_credentials",
              Outcome.UNAVAILABLE: "busy_or_error"}.get(result.outcome, "")
    if lockout is not None:
        reason = f"{lockout.scope.value}_locked"
    if address is None and result.outcome is not Outcome.LOCKED:
        reason = "malformed_username"
    log.event("auth.login", logging.INFO if result.ok else logging.WARNING,
              protocol=protocol, username=address.key if address else "(malformed)",
              client=client_ip, result=result.outcome.value, reason=reason,
              retry_after=round(result.retry_after, 1) if result.retry_after else None)
