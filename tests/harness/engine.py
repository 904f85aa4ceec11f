"""Run the real Mailstead engine as a subprocess on free loopback ports, for tests and benches.

`EngineProcess` writes a settings file into a fresh data directory, starts
`python -m appliance run`, waits until the MX port answers, and stops it with SIGTERM (or
SIGKILL for crash tests). The directory is reached through the same SQLite file the engine
uses, so tests add domains and accounts exactly as the CLI does.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from appliance.auth.passwords import Passwords
from appliance.settings import render_toml
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import create_maildir

HOSTNAME = "mx.mailstead.test"         # the engine's `server.hostname` and certificate name
PASSWORD = "correct horse battery"     # what EngineProcess.add_account sets

# Cheap argon2 parameters: tests hash many passwords; production defaults stay in the schema.
FAST_ARGON2 = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 8192,
               "auth.argon2_parallelism": 1}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: the sockets stay bound until all are chosen, so the
    kernel cannot hand out one port twice (an engine given one port for two listeners
    would fail to start)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until 127.0.0.1:`port` accepts connections (and `proc` is still alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"engine exited with status {proc.returncode} during start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port} within {timeout}s")


class EngineProcess:
    """One engine subprocess with its own data directory and ports."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = data_dir
        ports = free_ports(7)
        self.smtp_port = ports[0]
        self.submission_port = ports[1]         # STARTTLS, then AUTH (587 on the appliance)
        self.submissions_port = ports[2]        # implicit TLS (465)
        self.pop3_port = ports[3]               # POP3 with STLS (110)
        self.pop3s_port = ports[4]              # POP3 over implicit TLS (995)
        self.imap_port = ports[5]               # IMAP with STARTTLS (143)
        self.imaps_port = ports[6]              # IMAP over implicit TLS (993)
        values: dict[str, Any] = {
            "server.hostname": HOSTNAME, "server.dev_mode": True,
            "paths.data_dir": ".", "listen.address": "127.0.0.1",
            "listen.smtp_port": self.smtp_port, "log.level": "debug", **FAST_ARGON2,
            "limits.greeting_delay_ms": 0,   # tests about early talkers set their own
            "engine.workers": 1,             # one process; tests about workers set more
            "antivirus.enabled": False,      # no clamd here; test_clamav_* turn it on
            # SPF/DKIM/DMARC need DNS the tests control: test_auth_*, test_arc_* turn it on
            # with a Knot server (a machine's resolver may be slow or absent)
            "checks.authentication": False,
            "dnsbl.enabled": False,          # no public DNS here; test_dnsbl_* turn it on
            "greylist.enabled": False,       # tests expect 250 at once; test_greylist_* too
            "spam.enabled": False,           # its headers would change every stored message
                                             # (test_spam_* and test_dnsbl_* turn it on)
            # Loopback is not exempt in tests (test_client_limits_* set low limits); these
            # are far above what the suite and the benchmarks send from 127.0.0.1.
            "client_limits.exempt_networks": "",
            "client_limits.connections_per_minute": 1_000_000,
            "client_limits.messages_per_minute": 1_000_000,
            "listen.submission_port": self.submission_port,
            "listen.submissions_port": self.submissions_port,
            "listen.pop3_port": self.pop3_port, "listen.pop3s_port": self.pop3s_port,
            "listen.imap_port": self.imap_port, "listen.imaps_port": self.imaps_port,
        }
        values.update({k.replace("__", "."): v for k, v in settings.items()})
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = data_dir / "mailstead.toml"
        self.config_file.write_text(render_toml(values), encoding="utf-8")
        self.log_file = data_dir / "engine.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._directory: SqliteDirectory | None = None

    # -- process -----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("MAILSTEAD_")}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance", "--config", str(self.config_file), "run"],
                stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            for port in (self.smtp_port, self.submission_port, self.submissions_port,
                         self.pop3_port, self.pop3s_port, self.imap_port, self.imaps_port):
                wait_for_port(port, timeout, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise type(exc)(f"{exc}\n--- engine log ---\n{tail}") from None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: the crash tests' power cut."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> EngineProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()

    # -- directory ---------------------------------------------------------------------------

    @property
    def directory(self) -> SqliteDirectory:
        if self._directory is None:
            self._directory = SqliteDirectory(open_database(self.data_dir))
        return self._directory

    def add_domain(self, domain: str) -> None:
        self.directory.add_domain(domain)

    def add_account(self, address: str, password: str = PASSWORD) -> Path:
        """Add an account (its domain must exist); return its Maildir path."""
        passwords = Passwords(time_cost=1, memory_kib=8192, parallelism=1)
        account = self.directory.add_account(address, passwords.hash(password))
        maildir = self.data_dir / account.maildir
        create_maildir(maildir)
        return maildir

    def maildir(self, address: str) -> Path:
        return self.data_dir / self.directory.get_account(address).maildir

    def messages(self, address: str) -> list[bytes]:
        """Every message in the account's new/ and cur/, oldest name first."""
        root = self.maildir(address)
        files = sorted([*(root / "new").iterdir(), *(root / "cur").iterdir()])
        return [f.read_bytes() for f in files]


def client_context(engine: EngineProcess) -> ssl.SSLContext:
    """A client TLS context that verifies the engine's self-signed certificate (made for
    `HOSTNAME`: connect with that server name)."""
    return ssl.create_default_context(cafile=str(engine.data_dir / "tls" / "cert.pem"))


def loopback_context(engine: EngineProcess) -> ssl.SSLContext:
    """`client_context` for clients that name the server "127.0.0.1" (imaplib, raw
    sockets): the certificate is verified, its name is not."""
    context = client_context(engine)
    context.check_hostname = False
    return context
