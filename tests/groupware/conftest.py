"""DAV fixtures: settings on a temp data directory with accounts made through the directory
API, the WSGI app called in-process, and `mailstead dav serve` under real gunicorn with TLS.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appliance.auth.passwords import Passwords
from appliance.auth.verify import ThreadLocalVerifier
from appliance.settings import Settings, load_settings, render_toml
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.tls.certs import make_self_signed
from harness.engine import free_ports, wait_for_port
from harness.processes import stop_process

ALICE, BOB, EVE, MALLORY = ("alice@example.test", "bob@example.test", "eve@other.test",
                            "mallory@example.test")
PASSWORDS = {ALICE: "alice dav password 1", BOB: "bob dav password 2",
             EVE: "eve dav password 3", MALLORY: "mallory dav password 4"}
MAX_FAILURES = 3
FAST = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 8192,
        "auth.argon2_parallelism": 1, "auth.failure_delay_ms": 0,
        "auth.max_failures": MAX_FAILURES, "auth.max_failures_per_ip": 1000,
        "auth.known_client_days": 0}


def dav_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on `data_dir` (dev mode unless overridden) with cheap argon2."""
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"server.hostname": "mail.example.test", "server.dev_mode": True,
                              "paths.data_dir": ".", **FAST}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    config = data_dir / "mailstead.toml"
    config.write_text(render_toml(values), encoding="utf-8")
    return load_settings(config, environ={})


def add_accounts(settings: Settings, accounts: Iterable[str] = PASSWORDS) -> None:
    conn = open_database(settings.data_dir)
    try:
        directory = SqliteDirectory(conn)
        passwords = Passwords.from_settings(settings)
        for address in accounts:
            domain = address.rpartition("@")[2]
            if domain not in directory.list_domains():
                directory.add_domain(domain)
            directory.add_account(address, passwords.hash(PASSWORDS[address]))
    finally:
        conn.close()


def set_password(settings: Settings, address: str, password: str) -> None:
    conn = open_database(settings.data_dir)
    try:
        SqliteDirectory(conn).set_password_hash(
            address, Passwords.from_settings(settings).hash(password))
    finally:
        conn.close()


class CountingVerifier:
    """The directory's own verifier, counting its calls."""

    def __init__(self, settings: Settings) -> None:
        data_dir = settings.data_dir
        self._inner = ThreadLocalVerifier(lambda: SqliteDirectory(open_database(data_dir)),
                                          Passwords.from_settings(settings))
        self.calls = 0
        self._lock = threading.Lock()

    def verify(self, address: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
        return self._inner.verify(address, password)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def basic(address: str, password: str | None = None) -> str:
    secret = PASSWORDS[address] if password is None else password
    return "Basic " + base64.b64encode(f"{address}:{secret}".encode()).decode()


def call(app: Any, method: str, path: str, *, auth: str | None = None, body: bytes = b"",
         headers: dict[str, str] | None = None, client: str = "127.0.0.1") -> Reply:
    """One request to the WSGI app in this process (no socket)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost", "SERVER_PORT": "5232",
        "HTTP_HOST": "localhost", "REMOTE_ADDR": client, "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "wsgi.errors": sys.stderr}
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    got: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]],
                       _exc: Any = None) -> None:
        got["status"] = int(status.split()[0])
        got["headers"] = dict(response_headers)

    content = b"".join(app(environ, start_response))
    return Reply(got["status"], got["headers"], content)


@dataclass
class DavServer:
    settings: Settings
    port: int
    cert: Path
    log: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"https://localhost:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(settings.source), "dav",
             "serve"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)


@pytest.fixture(scope="module")
def dav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """One TLS gunicorn per test module, four accounts in two domains."""
    root = tmp_path_factory.mktemp("dav")
    (port,) = free_ports(1)
    settings = dav_settings(root / "data", server__dev_mode=False,
                            listen__dav_address="127.0.0.1", listen__dav_port=port,
                            dav__max_content_length=64 * 1024, dav__request_timeout=3)
    make_self_signed("localhost", settings.data_path("tls.cert_file"),
                     settings.data_path("tls.key_file"))
    add_accounts(settings)
    log = root / "dav.log"
    proc = start_server(settings, log)
    try:
        wait_for_port(port, 30, proc)
        yield DavServer(settings, port, settings.data_path("tls.cert_file"), log)
    finally:
        stop_server(proc)
