"""Per-client-address rate limits on the MX: new connections and messages (MAIL FROM) per
minute from one client, counted per engine process like the connection limits.

A client is its address, or its /64 for IPv6 (one host may own a whole /64 and rotate
through it). Clients in `client_limits.exempt_networks` are never limited. Refusals are
temporary (421 at connect, 450 to MAIL): a legitimate sender just retries later, as after
Postfix anvil's `smtpd_client_connection_rate_limit` and `smtpd_client_message_rate_limit`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from appliance.auth.throttle import client_key
from appliance.core import log
from appliance.core.ratelimit import SlidingWindowLimiter
from appliance.settings import Settings
from appliance.smtp import replies

__all__ = ["ClientRateLimits", "client_key", "parse_networks"]

WINDOW = 60.0        # seconds: the limits are per minute

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse `"127.0.0.0/8, ::1, 192.0.2.7"` (a bare address is a one-address network).

    Raises:
        ValueError: an item that is not an address or a network.
    """
    return tuple(ipaddress.ip_network(item.strip(), strict=False)
                 for item in text.split(",") if item.strip())


class ClientRateLimits:
    """The MX's per-client connection and message rates; 0 turns a limit off."""

    def __init__(self, connections_per_minute: int, messages_per_minute: int,
                 exempt: tuple[Network, ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connections = _limiter(connections_per_minute, clock)
        self._messages = _limiter(messages_per_minute, clock)
        self._exempt = exempt
        self._clock = clock
        self._next_prune = clock() + WINDOW
        self._logged: set[tuple[str, str]] = set()    # one log line per client and window

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientRateLimits:
        return cls(settings.get_int("client_limits.connections_per_minute"),
                   settings.get_int("client_limits.messages_per_minute"),
                   parse_networks(settings.get_str("client_limits.exempt_networks")))

    def admit_connection(self, ip: str) -> str | None:
        """Count a new connection from `ip`; the 421 reply if it is over the rate."""
        if self._over(self._connections, ip):
            self._log("smtp.connection_rate_exceeded", ip)
            return replies.CONNECTION_RATE_EXCEEDED
        return None

    def admit_message(self, ip: str) -> str | None:
        """Count a new transaction (MAIL FROM) from `ip`; the 450 reply if over the rate."""
        if self._over(self._messages, ip):
            self._log("smtp.message_rate_exceeded", ip)
            return replies.MESSAGE_RATE_EXCEEDED
        return None

    def _log(self, event: str, ip: str) -> None:
        """Log the first refusal of a client in a window, not each one of a flood."""
        key = (event, client_key(ip))
        if key not in self._logged:
            self._logged.add(key)
            log.event(event, client=ip, key=key[1])

    def _over(self, limiter: SlidingWindowLimiter | None, ip: str) -> bool:
        if limiter is None or self._is_exempt(ip):
            return False
        self._prune()
        return not limiter.acquire(client_key(ip))

    def _is_exempt(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._exempt)

    def _prune(self) -> None:
        """Once a window, forget clients whose events all left it (bounded memory)."""
        now = self._clock()
        if now >= self._next_prune:
            self._next_prune = now + WINDOW
            self._logged.clear()
            for limiter in (self._connections, self._messages):
                if limiter is not None:
                    limiter.prune()


def _limiter(per_minute: int, clock: Callable[[], float]) -> SlidingWindowLimiter | None:
    return SlidingWindowLimiter(per_minute, WINDOW, clock) if per_minute > 0 else None
