"""Failed-login accounting (pure): counters per account and per client, backoff lockouts.

Two tables, because two attacks differ: guessing one account's password from many
addresses trips the account counter; trying a few passwords on many accounts from one
address (password spraying) trips the client counter. Once a counter reaches its limit, each
further failure locks the key for `lockout * 2**n` seconds, capped, and every lock expires.
Counters are forgotten `failure_window` seconds after the last failure or lockout.

An account lock is the attacker's doing, so it must not keep the real user out: a client
address that logged into the account recently ("known client") is exempt from that
account's lock, though never from its own client lock. Tables are bounded; the least
recently touched entry goes first. IPv6 clients count per /64, the block one host gets.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_BACKOFF_DOUBLINGS = 32      # 2**32 lockouts: the cap is reached long before


@dataclass(frozen=True)
class ThrottlePolicy:
    """The limits, from the `auth.*` settings."""

    max_failures: int               # per account, before its first lockout
    max_failures_per_client: int    # per client address (IPv6: per /64)
    lockout: float                  # seconds of the first lockout; doubles each time
    max_lockout: float              # no lockout is longer
    failure_window: float           # seconds after which a quiet key's failures are forgotten
    known_client_ttl: float         # seconds a successful client stays known; 0: never
    max_entries: int = 100_000      # per table


class Scope(enum.Enum):
    """What a lockout applies to."""

    ACCOUNT = "account"
    CLIENT = "client"


@dataclass(frozen=True)
class Lockout:
    """A refusal: which key is locked and for how many more seconds."""

    scope: Scope
    retry_after: float


@dataclass
class _Record:
    failures: int = 0
    last_event: float = 0.0         # the last failure, or the end of the last lockout
    locked_until: float = 0.0


class _Table:
    """Records by key, least recently touched first, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._limit = limit

    def get(self, key: str) -> _Record | None:
        return self._records.get(key)

    def touch(self, key: str) -> _Record:
        record = self._records.pop(key, None) or _Record()
        self._records[key] = record
        while len(self._records) > self._limit:
            self._records.popitem(last=False)
        return record

    def pop(self, key: str) -> None:
        self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)


class LoginThrottle:
    """Decides whether a login may be tried, and learns from each result (no I/O)."""

    def __init__(self, policy: ThrottlePolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._accounts = _Table(policy.max_entries)
        self._clients = _Table(policy.max_entries)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check(self, account: str, client_ip: str) -> Lockout | None:
        """The lockout that refuses this attempt, or None if it may be verified."""
        now, client = self._clock(), client_key(client_ip)
        for scope, table, key in ((Scope.CLIENT, self._clients, client),
                                  (Scope.ACCOUNT, self._accounts, account)):
            record = table.get(key)
            if record is None or record.locked_until <= now:
                continue
            if scope is Scope.ACCOUNT and self._is_known(account, client, now):
                continue
            return Lockout(scope, record.locked_until - now)
        return None

    def record_failure(self, account: str, client_ip: str) -> None:
        """Count a failed verification against the account and the client."""
        now = self._clock()
        self._fail(self._accounts.touch(account), now, self._policy.max_failures)
        self._fail(self._clients.touch(client_key(client_ip)), now,
                   self._policy.max_failures_per_client)

    def record_success(self, account: str, client_ip: str) -> None:
        """Forget the client's failures (typos) and remember it as known for the account.

        The account's own counter is cleared only when it is not locked: a success from a
        known client during an attack must not hand the attacker a fresh set of tries.
        """
        now, client = self._clock(), client_key(client_ip)
        self._clients.pop(client)
        record = self._accounts.get(account)
        if record is not None and record.locked_until <= now:
            self._accounts.pop(account)
        if self._policy.known_client_ttl > 0:
            self._known.pop((account, client), None)
            self._known[(account, client)] = now
            while len(self._known) > self._policy.max_entries:
                self._known.popitem(last=False)

    def tracked(self) -> tuple[int, int]:
        """How many accounts and clients have a record (for tests and status)."""
        return len(self._accounts), len(self._clients)

    def _fail(self, record: _Record, now: float, threshold: int) -> None:
        if record.failures and now - record.last_event > self._policy.failure_window:
            record.failures = 0
        record.failures += 1
        record.last_event = now
        over = record.failures - threshold
        if over >= 0:
            length = self._policy.lockout * 2 ** min(over, MAX_BACKOFF_DOUBLINGS)
            record.locked_until = now + min(length, self._policy.max_lockout)
            record.last_event = record.locked_until

    def _is_known(self, account: str, client: str, now: float) -> bool:
        seen = self._known.get((account, client))
        return seen is not None and now - seen <= self._policy.known_client_ttl


def client_key(ip: str) -> str:
    """The key a client address is counted under: IPv4 as is, IPv6 by its /64 prefix."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
