"""Let's Encrypt's Pebble (Debian's `pebble`), a small RFC 8555 ACME CA, on loopback.

`Pebble` writes its config (ACME and management listeners on free loopback ports, HTTPS with
a certificate from a `TestCA` whose root `ca_file` is, `httpPort` where the console answers
HTTP-01), starts `pebble -dnsserver` pointed at a `KnotDns`, and waits for its directory.
Pebble forgets everything and makes a fresh issuing CA on every start: `issuer_root()`
fetches that CA's root from the management interface. Validation sleeps and nonce rejection
are switched off so tests are quick and deterministic.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from harness.debian import ensure_package
from peers.ca import TestCA
from peers.daemon import DaemonPeer

PEBBLE = "/usr/bin/pebble"


def free_tcp_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


class Pebble(DaemonPeer):
    """`with Pebble(dir, knot.resolver_spec, http_port) as ca: ca.directory_url ...`."""

    def __init__(self, workdir: Path, dns_server: str, http_port: int,
                 address: str = "127.0.0.1") -> None:
        self.workdir = workdir.resolve()
        self.dns_server = dns_server
        self.http_port = http_port
        self.address = address
        self.port = free_tcp_port(address)
        self.management_port = free_tcp_port(address)
        self.proc: subprocess.Popen[bytes] | None = None
        self._ca = TestCA("Pebble listener test CA")

    @property
    def directory_url(self) -> str:
        return f"https://{self.address}:{self.port}/dir"

    @property
    def ca_file(self) -> Path:
        """The root that verifies Pebble's HTTPS listeners (not the issuing CA)."""
        return self.workdir / "listener-ca.pem"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pebble.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._ca.write_cert(self.ca_file)
        cert, key = self._ca.issue([self.address, "localhost"], self.workdir, "listener")
        config = {"pebble": {
            "listenAddress": f"{self.address}:{self.port}",
            "managementListenAddress": f"{self.address}:{self.management_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": self.http_port, "tlsPort": free_tcp_port(self.address),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        path = self.workdir / "pebble-config.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, timeout: float = 30.0) -> None:
        """Start pebble and wait until its directory answers over verified HTTPS."""
        ensure_package(PEBBLE, "pebble")
        config = self._write_config()
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PEBBLE, "-config", str(config), "-dnsserver", self.dns_server],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"pebble did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(url, context=context, timeout=5) as answer:
            body: bytes = answer.read()
            return body

    def _answers(self) -> bool:
        try:
            return b"newOrder" in self._get(self.directory_url)
        except OSError:
            return False

    def issuer_root(self) -> bytes:
        """PEM of the root CA this Pebble run issues under (management `/roots/0`)."""
        return self._get(f"https://{self.address}:{self.management_port}/roots/0")

