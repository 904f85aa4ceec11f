"""The engine's own control ops (`engine.status`, `engine.restart`) and the settings
fingerprint that tells the console which saved settings the running engine does not use yet.

The fingerprint is per setting: a short SHA-256 digest of each editable setting's stored
text form, so the console can name the settings that differ without the engine ever sending
a value (some are secrets). The same pure functions run on both sides.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from appliance.control.messages import ControlError
from appliance.settings import SCHEMA, Settings
from appliance.settings_store import to_text

ENGINE_OPS = ("engine.status", "engine.restart")
DIGEST_CHARS = 16     # 64 bits of SHA-256: tells values apart, reveals nothing usable


def settings_digests(settings: Settings) -> dict[str, str]:
    """A digest of each editable setting's value, by name (never the value itself)."""
    return {s.name: _digest(f"{s.name}={to_text(s, settings[s.name])}")
            for s in SCHEMA if s.editable}


def fingerprint(digests: dict[str, str]) -> str:
    """One digest of all the per-setting digests (what `engine.status` shows first)."""
    return _digest("\n".join(f"{name} {digests[name]}" for name in sorted(digests)))


def pending(engine_digests: dict[str, str], current: Settings,
            skip_sections: tuple[str, ...] = ()) -> list[str]:
    """The editable settings whose `current` value the engine did not start with, sorted
    (settings the engine did not report, e.g. new in this version, are left out)."""
    mine = settings_digests(current)
    return sorted(name for name, digest in mine.items()
                  if name in engine_digests and engine_digests[name] != digest
                  and name.split(".", 1)[0] not in skip_sections)


class EngineOps:
    """Answers `engine.status` and `engine.restart` for the running engine.

    Args:
        settings: what this engine process started with.
        request_restart: asks for a graceful restart; must be safe to call from a thread
            (the control server runs ops in its executor) and must return at once.
    """

    def __init__(self, settings: Settings, request_restart: Callable[[], None],
                 workers: int = 1) -> None:
        self._digests = settings_digests(settings)
        self._request_restart = request_restart
        self._workers = workers
        self.instance = uuid.uuid4().hex    # changes with every start, also after re-exec
        self.started = time.time()
        self.restarting = False

    def call(self, op: str, args: dict[str, str]) -> Any:
        """Run one op (names in `ENGINE_OPS`)."""
        if op == "engine.status":
            return self.status()
        if op == "engine.restart":
            if not self.restarting:
                self.restarting = True
                self._request_restart()
            return {**self.status(), "restarting": True}
        raise ControlError(f"unknown op {op!r}")

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "instance": self.instance, "started": self.started,
                "workers": self._workers, "restarting": self.restarting,
                "fingerprint": fingerprint(self._digests), "settings": dict(self._digests)}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]
