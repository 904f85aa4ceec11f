"""A private authoritative DNS server (Debian's Knot DNS) for tests.

`KnotDns` runs `knotd -c CONF` in the foreground with its config, rundir, database and zone
files under one work directory, listening on one loopback address and a free high port (UDP
and TCP). Zones are given as record lines; `zone_text` adds the SOA and NS. Out-of-zone
questions are answered REFUSED (which resolvers treat as a server failure), names missing
inside a served zone get NXDOMAIN. Point `outbound.resolver` at `KnotDns.resolver_spec`.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.resolver

from harness.debian import ensure_package
from peers.daemon import DaemonPeer

KNOTD = Path("/usr/sbin/knotd")


def ensure_knot_installed() -> None:
    """Install Debian's `knot` package unless knotd is present (needs root)."""
    ensure_package(str(KNOTD), "knot")


def free_udp_tcp_port(address: str = "127.0.0.1") -> int:
    """A port on `address` free for both TCP and UDP right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def zone_text(origin: str, records: list[str], ttl: int = 60) -> str:
    """A zone file for `origin` with an SOA, an NS (ns.<origin> on 127.0.0.1) and `records`.

    Each record is a line in zone-file syntax relative to the origin, e.g. `@ MX 10 mx1`.
    """
    head = [
        f"$ORIGIN {origin.rstrip('.')}.",
        f"$TTL {ttl}",
        f"@ SOA ns hostmaster 1 3600 600 86400 {ttl}",
        "@ NS ns",
        "ns A 127.0.0.1",
    ]
    return "\n".join(head + records) + "\n"


class KnotDns(DaemonPeer):
    """One private knotd: `with KnotDns(dir, {"peer.test": zone_text(...)}) as dns: ...`."""

    def __init__(self, workdir: Path, zones: dict[str, str], address: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self.workdir = workdir.resolve()
        self.zones = dict(zones)
        self.address = address
        self.port = port if port is not None else free_udp_tcp_port(address)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def resolver_spec(self) -> str:
        """The `outbound.resolver` value for this server."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "knot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "knotd.log"

    def _config(self) -> str:
        zones = "".join(f"  - domain: {name}\n" for name in self.zones)
        return (
            "server:\n"
            f'    rundir: "{self.workdir / "run"}"\n'
            f"    listen: {self.address}@{self.port}\n"
            "database:\n"
            f'    storage: "{self.workdir / "db"}"\n'
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            "template:\n"
            "  - id: default\n"
            f'    storage: "{self.workdir / "zones"}"\n'
            '    file: "%s.zone"\n'
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: none\n"
            "zone:\n" + zones
        )

    def _write(self) -> None:
        for sub in ("run", "db", "zones"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for name, text in self.zones.items():
            (self.workdir / "zones" / f"{name}.zone").write_text(text)
        self.config_path.write_text(self._config())

    def start(self, timeout: float = 20.0) -> None:
        """Write config and zones, start knotd and wait until every zone answers its SOA."""
        ensure_knot_installed()
        self._write()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(KNOTD), "-c", str(self.config_path)], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"knotd did not serve its zones:\n{self.log_tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        resolver = self.resolver()
        resolver.lifetime = 1.0
        try:
            for name in self.zones:
                resolver.resolve(name, "SOA")
        except dns.exception.DNSException:
            return False
        return True

    def resolver(self) -> dns.resolver.Resolver:
        """A blocking dnspython resolver that asks only this server."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.address]
        resolver.port = self.port
        return resolver

