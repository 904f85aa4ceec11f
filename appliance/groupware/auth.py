"""DAV logins: Radicale's auth plugin on the one login guard, with a short login cache.

CalDAV and CardDAV clients send Basic credentials with every request, and one argon2id
verification costs ~50 ms, so a successful login is remembered in memory for
`dav.auth_cache_seconds`: keyed by the login as sent, holding HMAC-SHA256(per-process random
key, login NUL password) and compared with `hmac.compare_digest`, never the password
itself. The cache is bounded (`dav.auth_cache_entries`, least recently used out first), a
failed login drops the login's entry, and a wrong password is never cached.
Consequence an admin must know: a disabled account or a changed password keeps working for
a client that already logged in until its entry expires — at most `dav.auth_cache_seconds`.

Everything else (normalising the address, lockouts, the log event, delays, app passwords)
is the guard's (`appliance.auth.guard`), as for IMAP and POP3. The guard is asyncio code;
each process runs it on one event loop in a thread (appliance/auth/guard_thread.py), as
the console does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from radicale import config as radicale_config
from radicale.auth import AuthContext, BaseAuth

from appliance.auth.guard import LoginGuard, LoginResult
from appliance.auth.guard_thread import GuardThread

WAIT = 120.0          # seconds a request waits for the guard (queue, argon2, failure delay)
PROTOCOL = "dav"      # the guard's log field


@dataclass
class _Entry:
    digest: bytes
    account: str
    expires: float


class LoginCache:
    """Recently verified (login, password) pairs; thread-safe, bounded, expiring."""

    def __init__(self, ttl: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)    # per process: nothing to steal on disk
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, login: str, password: str) -> bytes:
        message = login.encode("utf-8", "surrogatepass") + b"\0" + \
            password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, login: str, password: str) -> str | None:
        """The account a cached login maps to, or None (unknown, other password, expired)."""
        digest = self._digest(login, password)
        with self._lock:
            entry = self._entries.get(login)
            if entry is None:
                return None
            if entry.expires <= self._clock():
                del self._entries[login]
                return None
            if not hmac.compare_digest(entry.digest, digest):
                return None
            self._entries.move_to_end(login)
            return entry.account

    def put(self, login: str, password: str, account: str) -> None:
        if self._ttl <= 0 or self._max_entries <= 0:
            return
        entry = _Entry(self._digest(login, password), account, self._clock() + self._ttl)
        with self._lock:
            self._entries[login] = entry
            self._entries.move_to_end(login)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def drop(self, login: str) -> None:
        with self._lock:
            self._entries.pop(login, None)

    def __len__(self) -> int:
        return len(self._entries)


class GuardLoop:
    """The login guard and the event loop thread it runs on (one per process)."""

    def __init__(self, guard: LoginGuard) -> None:
        self.guard = guard
        self._thread = GuardThread("dav-guard")

    def login(self, login: str, password: str, client_ip: str) -> LoginResult:
        return self._thread.run(self.guard.login(login, password, client_ip=client_ip,
                                                 protocol=PROTOCOL), WAIT)

    def close(self) -> None:
        self.guard.close()
        self._thread.stop()


class Auth(BaseAuth):
    """Radicale's auth plugin: the guard, the cache, and provisioning on a fresh login.

    The username Radicale sees is the normalised address (`LoginResult.account`), so the
    collection paths are the same whatever case or Unicode form the client typed.
    """

    def __init__(self, configuration: radicale_config.Configuration, guard: GuardLoop,
                 cache: LoginCache, on_login: Callable[[str], None]) -> None:
        super().__init__(configuration)
        self._guard = guard
        self._cache = cache
        self._on_login = on_login

    def _login(self, login: str, password: str) -> str:
        raise NotImplementedError("Radicale calls _login_ext, which has the client address")

    def _login_ext(self, login: str, password: str, context: AuthContext) -> str:
        cached = self._cache.get(login, password)
        if cached is not None:
            return cached
        result = self._guard.login(login, password, context.remote_addr or "unknown")
        if not result.ok or result.account is None:
            self._cache.drop(login)
            return ""
        self._cache.put(login, password, result.account)
        self._on_login(result.account)
        return result.account
