"""Connection reuse: idle SMTP sessions kept for the next message to the same place.

After a transaction the transport hands a still-usable session back here instead of sending
QUIT, and the next attempt to the same destination domain, MX host and address (opened under
the same MTA-STS mode) takes it and sends the next MAIL FROM (RFC 5321 3.3: a session may
carry any number of transactions; RSET comes first when the last one left state behind).
Like Postfix's connection cache, a session idles at most `idle_timeout` seconds and carries
at most `max_uses` messages (`outbound.session_*` settings); all are closed at shutdown.
How many sessions one domain uses at once is the runner's concurrency window
(`outbound/concurrency.py`): never more than `queue.max_per_domain`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from appliance.outbound.client import SmtpSession

IDLE_TIMEOUT = 5.0      # the defaults of outbound.session_idle_timeout,
MAX_USES = 100          # outbound.session_max_messages
MAX_IDLE_PER_KEY = 20   # and outbound.session_max_idle


@dataclass(frozen=True)
class SessionKey:
    """Where a session goes: a session is only reused for exactly the same place."""

    domain: str
    host: str
    address: str
    mta_sts: str        # the policy mode it was opened under (its TLS plan follows from it)


@dataclass(eq=False)
class _Idle:
    session: SmtpSession
    uses: int
    timer: asyncio.TimerHandle | None = field(default=None)


class SessionPool:
    """Idle sessions by `SessionKey`; used from one event loop only."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT, max_uses: int = MAX_USES,
                 max_idle: int = MAX_IDLE_PER_KEY) -> None:
        self.idle_timeout = idle_timeout
        self.max_uses = max_uses
        self.max_idle = max_idle
        self._idle: dict[SessionKey, list[_Idle]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def take(self, key: SessionKey) -> tuple[SmtpSession, int] | None:
        """The most recently used idle session for `key` and its use count, or None."""
        entries = self._idle.get(key, [])
        while entries:
            entry = entries.pop()
            if entry.timer is not None:
                entry.timer.cancel()
            if entry.session.alive:
                if not entries:
                    self._idle.pop(key, None)
                return entry.session, entry.uses
            self._quit(entry.session)
        self._idle.pop(key, None)
        return None

    def give(self, key: SessionKey, session: SmtpSession, uses: int) -> None:
        """Keep `session` (which has carried `uses` messages) for the next message to `key`,
        or QUIT it when it is worn out, the pool is full or closed."""
        entries = self._idle.setdefault(key, [])
        if (self._closed or uses >= self.max_uses or len(entries) >= self.max_idle
                or not session.alive):
            if not entries:
                self._idle.pop(key, None)
            self._quit(session)
            return
        entry = _Idle(session, uses)
        entry.timer = asyncio.get_running_loop().call_later(
            self.idle_timeout, self._expire, key, entry)
        entries.append(entry)

    @property
    def idle_count(self) -> int:
        return sum(len(entries) for entries in self._idle.values())

    async def close(self) -> None:
        """QUIT every idle session (at shutdown); later `give`s just QUIT."""
        self._closed = True
        for entries in self._idle.values():
            for entry in entries:
                if entry.timer is not None:
                    entry.timer.cancel()
                self._quit(entry.session)
        self._idle.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _expire(self, key: SessionKey, entry: _Idle) -> None:
        entries = self._idle.get(key, [])
        with contextlib.suppress(ValueError):
            entries.remove(entry)
            self._quit(entry.session)
        if not entries:
            self._idle.pop(key, None)

    def _quit(self, session: SmtpSession) -> None:
        task = asyncio.get_running_loop().create_task(session.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
