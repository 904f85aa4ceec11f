"""The remote side of the end-to-end tests: Knot DNS and real Postfix peers, all on loopback.

`MailWorld` starts, in one temp directory:
- Knot DNS on 127.0.0.1 serving the zone `test.`: `peer.test` (MX mx.peer.test, 127.0.0.2)
  and `later.test` (MX mx.later.test, 127.0.0.3);
- Postfix "peer" on 127.0.0.2 with STARTTLS (a certificate from a test CA for
  mx.peer.test), Maildirs for alice, bob and carol at peer.test; any other user there gets
  Postfix's own `550 5.1.1 ... User unknown in virtual mailbox table`.
`later` is a second Postfix, for later.test on 127.0.0.3, configured but not started: the
retry and crash tests start and stop it. Both listen on one high port, which stands for 25.
`engine_settings()` gives the `EngineProcess` settings that route our outbound mail here.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from peers.ca import TestCA
from peers.dns import KnotDns, zone_text
from peers.outbound_world import port_free_on, tls_main_cf
from peers.postfix import PostfixInstance

PEER_IP, LATER_IP = "127.0.0.2", "127.0.0.3"
PEER_DOMAIN, LATER_DOMAIN = "peer.test", "later.test"
PEER_USERS = [f"{user}@{PEER_DOMAIN}" for user in ("alice", "bob", "carol")]
LATER_USERS = [f"{user}@{LATER_DOMAIN}" for user in ("alice", "bob")]
ZONE_RECORDS = [
    "peer MX 10 mx.peer", f"mx.peer A {PEER_IP}",
    "later MX 10 mx.later", f"mx.later A {LATER_IP}",
]
POSTQUEUE = "/usr/sbin/postqueue"


def maildir_messages(instance: PostfixInstance, address: str) -> list[bytes]:
    """The messages Postfix delivered to `address`, oldest first (by modification time:
    Postfix's file names sort by inode within one second, not by arrival)."""
    maildir = instance.maildir_of(address)
    files = sorted((p for sub in ("new", "cur") if (maildir / sub).is_dir()
                    for p in (maildir / sub).iterdir()),
                   key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [f.read_bytes() for f in files]


def postfix_queue_empty(instance: PostfixInstance) -> bool:
    """True when the instance's own queue holds nothing (everything delivered or bounced)."""
    out = subprocess.run([POSTQUEUE, "-c", str(instance.config_dir), "-p"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    return "Mail queue is empty" in out


class MailWorld:
    """Knot, the peer Postfix and the (stopped) later Postfix: `with MailWorld(dir) as w:`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ca = TestCA()
        self.ca_file = self.ca.write_cert(workdir / "ca.pem")
        self.smtp_port = port_free_on([PEER_IP, LATER_IP])
        self.dns = KnotDns(workdir / "dns", {"test": zone_text("test", ZONE_RECORDS)})
        peer_cert = self.ca.issue(["mx.peer.test"], workdir / "certs", "peer")
        later_cert = self.ca.issue(["mx.later.test"], workdir / "certs", "later")
        self.peer = PostfixInstance(workdir / "peer", self.smtp_port, [PEER_DOMAIN],
                                    PEER_USERS, main_cf=tls_main_cf(*peer_cert),
                                    address=PEER_IP)
        self.later = PostfixInstance(workdir / "later", self.smtp_port, [LATER_DOMAIN],
                                     LATER_USERS, main_cf=tls_main_cf(*later_cert),
                                     address=LATER_IP)

    def engine_settings(self, **changes: Any) -> dict[str, Any]:
        """`EngineProcess` settings: DNS from our Knot, MX port and CA of our peers, quick
        retries (1 s, then at most 2 s) and short network timeouts."""
        return {
            "outbound__resolver": self.dns.resolver_spec, "outbound__port": self.smtp_port,
            "outbound__ca_file": str(self.ca_file), "outbound__dns_timeout": 3,
            "outbound__connect_timeout": 3, "queue__first_retry": 1, "queue__max_retry": 2,
            **changes,
        }

    def start(self) -> None:
        self.dns.start()
        try:
            self.peer.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for stop in (self.later.stop, self.peer.stop, self.dns.stop):
            with contextlib.suppress(Exception):
                stop()

    def __enter__(self) -> MailWorld:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def mail_world(tag: str) -> Iterator[MailWorld]:
    """A started world in its own temp directory (not pytest's: Postfix's daemons must be
    able to walk down to it, see outbound_world.outbound_world), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"mailstead-{tag}-"))
    try:
        with MailWorld(workdir) as world:
            yield world
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
