"""Connection admission: totals and per-client-address limits (live connections, and on the
MX new connections per minute), and the list of live sessions.

The listener asks `admit` when a connection opens and gets the 421 reply to send if it is
refused; at shutdown the tracker is how the engine reaches every live session.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from appliance.checks.ratelimit_clients import ClientRateLimits
from appliance.smtp import replies


class Closable(Protocol):
    @property
    def in_transaction(self) -> bool: ...

    def close_transport(self, reply: str | None = None) -> None: ...


class ConnectionTracker:
    """Counts live connections in all and per client IP; refuses those over the limits.

    `rates` (the MX's): also refuse a client over its rate of new connections per minute.
    """

    def __init__(self, max_total: int, max_per_ip: int,
                 rates: ClientRateLimits | None = None) -> None:
        self._max_total = max_total
        self._max_per_ip = max_per_ip
        self._rates = rates
        self._by_ip: Counter[str] = Counter()
        self._live: dict[Closable, str] = {}
        self.closing = False

    def admit(self, session: Closable, ip: str) -> str | None:
        """Register a new connection; return the 421 reply if it must be refused."""
        self._live[session] = ip
        self._by_ip[ip] += 1
        if self.closing:
            return replies.SHUTTING_DOWN
        if len(self._live) > self._max_total:
            return replies.TOO_MANY_CONNECTIONS
        if self._by_ip[ip] > self._max_per_ip:
            return replies.TOO_MANY_FROM_YOU
        if self._rates is not None:
            return self._rates.admit_connection(ip)
        return None

    def release(self, session: Closable) -> None:
        ip = self._live.pop(session, None)
        if ip is not None:
            self._by_ip[ip] -= 1
            if self._by_ip[ip] <= 0:
                del self._by_ip[ip]

    @property
    def live(self) -> int:
        return len(self._live)

    @property
    def busy(self) -> int:
        """Sessions in the middle of a mail transaction (what shutdown waits for)."""
        return sum(1 for session in self._live if session.in_transaction)

    def close_all(self, reply: str, idle_only: bool = False) -> None:
        """Close live sessions with `reply`; with `idle_only`, spare those mid-transaction."""
        for session in list(self._live):
            if not (idle_only and session.in_transaction):
                session.close_transport(reply)


@dataclass
class Listener:
    """One bound server and the sessions it accepted."""

    name: str
    server: asyncio.Server
    tracker: ConnectionTracker
