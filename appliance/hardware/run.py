"""The hardware package's one way to start a program: an argument list, a fixed PATH, a
timeout, never a shell string (STYLE.md practice 14).

The engine has no shared subprocess module yet; the update issue (firmware hooks for every
stage) is to move this into `appliance/core/` and generalise it. Until then smartctl,
mdadm and the disk hooks all start here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A fixed search path: nothing from the caller's environment decides which binary runs.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_OUTPUT = 4 * 1024 * 1024     # bytes kept of stdout (smartctl -x JSON is ~60 KB)


@dataclass(frozen=True)
class ToolResult:
    """What a finished (or timed-out, or unstartable) program left behind."""

    argv: tuple[str, ...]
    returncode: int          # -1: could not start; -2: killed after the timeout
    stdout: bytes
    stderr: bytes

    @property
    def started(self) -> bool:
        return self.returncode != -1


def run_tool(argv: Sequence[str], timeout: float,
             extra_env: Mapping[str, str] | None = None) -> ToolResult:
    """Run `argv` (no shell) with PATH fixed and a timeout; never raises for the tool's own
    failure. The environment is PATH, LANG=C (stable output) and `extra_env` only."""
    env = {"PATH": SAFE_PATH, "LANG": "C", "LC_ALL": "C", **(extra_env or {})}
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False, close_fds=True)
    except subprocess.TimeoutExpired as exc:
        return ToolResult(tuple(argv), -2, _bytes(exc.stdout), _bytes(exc.stderr))
    except OSError as exc:
        return ToolResult(tuple(argv), -1, b"", str(exc).encode())
    return ToolResult(tuple(argv), done.returncode, done.stdout[:MAX_OUTPUT],
                      done.stderr[:MAX_OUTPUT])


def _bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value[:MAX_OUTPUT]


def which(name: str) -> str | None:
    """The program `name` on SAFE_PATH, or None."""
    for folder in SAFE_PATH.split(":"):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
