"""The login guard for code that is not asyncio (the console's Flask views, Radicale's auth
plugin): one event loop in a daemon thread per process, on which the guards run and which
the callers wait on with a time limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from appliance.auth.guard import LoginResult


class GuardThread:
    """An event loop running in its own thread; `run` waits for one login attempt on it."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=name)
        self._thread.start()

    def run(self, attempt: Coroutine[Any, Any, LoginResult], timeout: float) -> LoginResult:
        """The attempt's result (TimeoutError after `timeout` seconds: the caller refuses)."""
        return asyncio.run_coroutine_threadsafe(attempt, self._loop).result(timeout)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
