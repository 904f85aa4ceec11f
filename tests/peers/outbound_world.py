"""The remote world the outbound tests deliver into, all on loopback, all real software.

`OutboundWorld` starts, in one work directory:
- a test CA and a stranger "rogue" CA (tests/peers/ca.py);
- Knot DNS on 127.0.0.1 serving the zone `test.` below (MX preferences, null MX, an
  A-only domain, MTA-STS TXT records, hosts with no address);
- Postfix "peer" on 127.0.0.2 with STARTTLS (a certificate from the test CA for some of
  the MX names, not all) and Postfix "rogue" on 127.0.0.4 (a certificate from the rogue
  CA), both on the same high port, which stands for port 25;
- an HTTPS server for MTA-STS policies on 127.0.0.1 (certificate from the test CA).
127.0.0.3 is left empty: a host that is down. `config()` gives a TransportConfig that
points at all of it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from appliance.outbound.client import Timeouts
from appliance.outbound.transport import TransportConfig
from peers.ca import TestCA
from peers.dns import KnotDns, zone_text
from peers.https import Answer, PolicyServer
from peers.postfix import PostfixInstance

PEER_IP, DOWN_IP, ROGUE_IP, DNS_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.1"
HELO_NAME = "mailstead.test"
STS_DOMAINS = ("sts-enforce", "sts-badname", "sts-testing", "sts-mismatch", "sts-untrusted")

ZONE_RECORDS = [
    # MX preference: mx1 (10) is down, mx2 (20) is the peer
    "peer MX 10 mx1.peer", "peer MX 20 mx2.peer",
    f"mx1.peer A {DOWN_IP}", f"mx2.peer A {PEER_IP}",
    "direct MX 10 mx.direct", f"mx.direct A {PEER_IP}",
    "nullmx MX 0 .",                                   # RFC 7505
    f"aonly A {PEER_IP}",                              # RFC 5321 5.1 implicit MX
    "down MX 10 mx.down", f"mx.down A {DOWN_IP}",
    "noaddr MX 10 mx.noaddr",                          # an MX host without any address
    "v6 MX 10 mx.v6", "mx.v6 AAAA ::1",
    "slow MX 10 mx.slow", "slow MX 20 mx2.peer", "mx.slow A 127.0.0.5",
    # MTA-STS: every sts-* domain publishes a TXT record and a policy host
    *(f"mx.{d} A {ROGUE_IP if d == 'sts-untrusted' else PEER_IP}" for d in STS_DOMAINS),
    *(f"{d} MX 10 mx.{d}" for d in STS_DOMAINS),
    *(f'_mta-sts.{d} TXT "v=STSv1; id=1"' for d in STS_DOMAINS),
    *(f"mta-sts.{d} A {DNS_IP}" for d in STS_DOMAINS),
]
PEER_DOMAINS = ["peer.test", "direct.test", "aonly.test", "slow.test", "sts-enforce.test",
                "sts-badname.test", "sts-testing.test", "sts-mismatch.test"]
# the peer's certificate names only these; sts-badname and sts-testing get a name mismatch
PEER_CERT_NAMES = ["mx2.peer.test", "mx.direct.test", "aonly.test", "mx.sts-enforce.test",
                   "mx.sts-mismatch.test"]


def policy(mode: str, mx: str) -> Answer:
    return Answer(f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n".encode())


def default_policies() -> dict[str, Answer]:
    answers = {f"mta-sts.{d}.test": policy("enforce", f"mx.{d}.test") for d in STS_DOMAINS}
    answers["mta-sts.sts-testing.test"] = policy("testing", "mx.sts-testing.test")
    answers["mta-sts.sts-mismatch.test"] = policy("enforce", "mx.elsewhere.test")
    return answers


def port_free_on(addresses: list[str]) -> int:
    """A TCP port that is free on every address given."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(address, port) for address in addresses):
            return port
    raise RuntimeError("no common free port")


def _bindable(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def tls_main_cf(cert: Path, key: Path) -> dict[str, str]:
    return {"smtpd_tls_cert_file": str(cert), "smtpd_tls_key_file": str(key),
            "smtpd_tls_security_level": "may", "smtpd_tls_received_header": "yes",
            "smtpd_tls_loglevel": "1"}


class OutboundWorld:
    """DNS, two Postfix peers and an MTA-STS server: `with OutboundWorld(dir) as world:`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ca = TestCA()
        self.rogue_ca = TestCA("Rogue CA")
        self.ca_file = self.ca.write_cert(workdir / "ca.pem")
        self.smtp_port = port_free_on([PEER_IP, DOWN_IP, ROGUE_IP, "127.0.0.5", "::1"])
        self.https_port = port_free_on([DNS_IP])
        self.dns = KnotDns(workdir / "dns", {"test": zone_text("test", ZONE_RECORDS)})
        certs = workdir / "certs"
        peer_cert = self.ca.issue(PEER_CERT_NAMES, certs, "peer")
        rogue_cert = self.rogue_ca.issue(["mx.sts-untrusted.test"], certs, "rogue")
        web_cert = self.ca.issue([f"mta-sts.{d}.test" for d in STS_DOMAINS], certs, "web")
        mailboxes = [f"{user}@{d}" for d in PEER_DOMAINS for user in ("alice", "bob")]
        self.peer = PostfixInstance(workdir / "peer", self.smtp_port, PEER_DOMAINS, mailboxes,
                                    main_cf=tls_main_cf(*peer_cert), address=PEER_IP)
        self.rogue = PostfixInstance(workdir / "rogue", self.smtp_port,
                                     ["sts-untrusted.test"], ["alice@sts-untrusted.test"],
                                     main_cf=tls_main_cf(*rogue_cert), address=ROGUE_IP)
        self.policies = PolicyServer(DNS_IP, self.https_port, *web_cert, default_policies())

    def config(self, cache_dir: Path, **changes: object) -> TransportConfig:
        """A TransportConfig for this world (short timeouts), with `changes` applied."""
        values: dict[str, object] = {
            "helo_name": HELO_NAME, "mta_sts_dir": cache_dir, "port": self.smtp_port,
            "resolver": self.dns.resolver_spec, "dns_timeout": 3.0,
            "timeouts": Timeouts(connect=3, greeting=10, mail=10, rcpt=10, data_init=10,
                                 data_block=10, data_end=20),
            "ca_file": self.ca_file, "mta_sts_port": self.https_port, "mta_sts_timeout": 5.0,
            **changes,
        }
        return TransportConfig(**values)  # type: ignore[arg-type]

    def wait_for(self, instance: PostfixInstance, address: str, count: int,
                 timeout: float = 20.0) -> bool:
        """Wait until `address` at `instance` holds `count` messages."""
        deadline = time.monotonic() + timeout
        while instance.count_delivered(address) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def messages(self, instance: PostfixInstance, address: str) -> list[bytes]:
        maildir = instance.maildir_of(address)
        files = sorted(p for sub in ("new", "cur") if (maildir / sub).is_dir()
                       for p in (maildir / sub).iterdir())
        return [f.read_bytes() for f in files]

    def start(self) -> None:
        self.dns.start()
        try:
            self.peer.start()
            self.rogue.start()
            self.policies.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for stop in (self.policies.stop, self.rogue.stop, self.peer.stop, self.dns.stop):
            with contextlib.suppress(Exception):
                stop()

    def __enter__(self) -> OutboundWorld:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def outbound_world(tag: str) -> Iterator[OutboundWorld]:
    """A started world in its own temp directory, removed afterwards.

    Not under pytest's basetemp: a concurrent pytest run resets `pytest-of-<user>` to 0700,
    and Postfix's daemons (user postfix) must be able to walk down to their directories.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"mailstead-{tag}-"))
    try:
        with OutboundWorld(workdir) as world:
            yield world
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
