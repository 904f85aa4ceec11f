"""Helpers of the end-to-end tests: submit like a mail program, ask the queue like an admin.

`submit` speaks to the engine's submission port with smtplib (STARTTLS, then AUTH PLAIN) and
returns the queue id of the `250`; `queue_cli` runs `mailstead queue ...` as a separate
process with the engine's `--config`, exactly as an admin would.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.engine import EngineProcess
from harness.submission import smtp_client


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` every 50 ms until it is true; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def send_one(client: smtplib.SMTP, sender: str, recipients: list[str], message: bytes) -> str:
    """One transaction on an open session; returns the queue id of the final `250`."""
    code, text = client.mail(sender)
    assert code == 250, text
    for recipient in recipients:
        code, text = client.rcpt(recipient)
        assert code == 250, (recipient, text)
    code, text = client.data(message)
    assert code == 250, text
    return text.decode().rsplit(" ", 1)[1]


def submit(engine: EngineProcess, account: str, recipients: list[str], message: bytes) -> str:
    """Submit `message` from `account` (logged in over STARTTLS); return its queue id."""
    with smtp_client(engine, account) as client:
        return send_one(client, account, recipients, message)


def queue_cli(engine: EngineProcess, *args: str) -> str:
    """`mailstead --config ... queue ARGS` in its own process; its standard output."""
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), "queue",
         *args], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def queue_json(engine: EngineProcess, *args: str) -> Any:
    return json.loads(queue_cli(engine, "--json", *args))


def queue_empty(engine: EngineProcess) -> bool:
    return queue_cli(engine, "list").strip() == "queue is empty"
