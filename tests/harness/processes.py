"""Stopping a server process a test started: SIGTERM (the server's own graceful stop, which
the tests often check in its log), then SIGKILL if it lingers past the timeout."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM `proc`, wait up to `timeout` s, then SIGKILL; a process already gone is left."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
