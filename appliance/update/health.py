"""The built-in health check after an update: the engine answers SMTP (220) and IMAP (* OK)
on loopback, the console answers HTTP(S), the queue directory and mailstead.db open, and the
database is migrated to the data schema this build needs. Retried until a deadline, since
the services may still be starting when the check begins.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.outbound.spool import QUEUE_DIR
from appliance.settings import Settings
from appliance.storage.db import DB_NAME

LOOPBACK = "127.0.0.1"
PROBE_TIMEOUT = 5.0
RETRY_EVERY = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def summary(self) -> str:
        bad = self.failures
        return "healthy" if not bad else "; ".join(f"{c.name}: {c.detail}" for c in bad)


@dataclass(frozen=True)
class Targets:
    """What is checked: ports on loopback and the data directory."""

    smtp_port: int
    imap_port: int
    console_host: str
    console_port: int
    data_dir: Path
    data_schema: int        # the migration count this build needs

    @classmethod
    def from_settings(cls, settings: Settings, data_schema: int) -> Targets:
        host = settings.get_str("listen.console_address")
        return cls(settings.get_int("listen.smtp_port"), settings.get_int("listen.imap_port"),
                   LOOPBACK if host in ("0.0.0.0", "::", "") else host,
                   settings.get_int("listen.console_port"), settings.data_dir, data_schema)


def banner(host: str, port: int, expect: bytes) -> Check:
    """Connect and read the greeting line; ok when it starts with `expect`."""
    name = f"{expect.decode().strip()} on {host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as sock:
            line = sock.makefile("rb").readline(512)
    except OSError as exc:
        return Check(name, False, str(exc))
    return Check(name, line.startswith(expect), line[:80].decode("ascii", "replace").strip())


def http(host: str, port: int) -> Check:
    """The console answers an HTTP request, over TLS (the appliance) or plain (dev)."""
    name = f"console on {host}:{port}"
    request = f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # just liveness
    detail = ""
    for wrap in (True, False):
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as raw:
                sock = context.wrap_socket(raw, server_hostname=host) if wrap else raw
                sock.sendall(request)
                line = sock.makefile("rb").readline(256)
        except (OSError, ssl.SSLError) as exc:
            detail = str(exc)
            continue
        if line.startswith(b"HTTP/"):
            return Check(name, True, line.decode("ascii", "replace").strip())
        detail = f"answered {line[:40]!r}"
    return Check(name, False, detail)


def storage(data_dir: Path, data_schema: int) -> list[Check]:
    """The queue directory exists; mailstead.db opens and is at the needed schema."""
    queue = data_dir / QUEUE_DIR
    checks = [Check("queue directory", queue.is_dir(), str(queue))]
    try:
        conn = sqlite3.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True, timeout=10)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [*checks, Check("mailstead.db", False, str(exc))]
    checks.append(Check("mailstead.db schema", version == data_schema,
                        f"at {version}, this build needs {data_schema}"))
    return checks


def check_once(targets: Targets) -> Report:
    return Report([banner(LOOPBACK, targets.smtp_port, b"220"),
                   banner(LOOPBACK, targets.imap_port, b"* OK"),
                   http(targets.console_host, targets.console_port),
                   *storage(targets.data_dir, targets.data_schema)])


def check(targets: Targets, wait: float,
          clock: Callable[[], float] = time.monotonic) -> Report:
    """check_once until it passes or `wait` seconds have gone; the last report."""
    deadline = clock() + wait
    while True:
        report = check_once(targets)
        if report.ok or clock() >= deadline:
            return report
        time.sleep(min(RETRY_EVERY, max(deadline - clock(), 0.0)))
