"""End to end: mail submitted to the real engine leaves DKIM-signed, and independent
verifiers accept both signatures with the keys the tests' Knot serves.

`mailstead domain add` (run as an admin would) creates the domain's keys; `mailstead dns
records` prints the zone lines, which go, unchanged, into a Knot zone for example.test.
The engine delivers to the real Postfix peer of `mail_world`; the message as Postfix stored
it is checked with dkimpy's `dkimverify` and OpenDKIM's `opendkim-testmsg` (Debian's
opendkim-tools), each signature on its own. Both verifiers use the system resolver, so they
run in a private mount namespace whose /etc/resolv.conf names our Knot (on port 53 of a
loopback address of its own). Then a rotation: `dkim rotate --activate` refuses while the
new records are missing, switches once Knot serves them, and the next message verifies
with the new selectors.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.debian import ensure_package
from harness.e2e import queue_empty, submit, wait_until
from harness.engine import EngineProcess
from peers.dns import KnotDns, zone_text
from peers.mail_world import ZONE_RECORDS, MailWorld, mail_world, maildir_messages

pytestmark = pytest.mark.timeout(180)
ALICE = "alice@example.test"
RECIPIENT = "carol@peer.test"
DNS_ADDRESS = "127.0.83.1"          # port 53: the system resolver library knows no other
DKIMVERIFY = Path(sys.executable).parent / "dkimverify"


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    with mail_world("e2e-dkim") as started:
        yield started


@pytest.fixture(scope="module")
def engine(world: MailWorld, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[EngineProcess]:
    settings = world.engine_settings(queue__max_retry=1,
                                     outbound__resolver=f"{DNS_ADDRESS}:53")
    proc = EngineProcess(tmp_path_factory.mktemp("e2e-dkim") / "data", **settings)
    proc.start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def cli(engine: EngineProcess, *args: str, status: int = 0) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def dns(engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    """Knot on DNS_ADDRESS:53 serving the world's `test.` zone and example.test with the
    records `mailstead dns records` printed."""
    cli(engine, "domain", "add", "example.test")
    engine.add_account(ALICE)
    server = KnotDns(tmp_path_factory.mktemp("dkim-dns"), {}, address=DNS_ADDRESS, port=53)
    publish(server, engine)
    try:
        yield server
    finally:
        server.stop()


def publish(server: KnotDns, engine: EngineProcess) -> None:
    """(Re)start `server` with the current output of `mailstead dns records`."""
    lines = cli(engine, "dns", "records", "example.test").splitlines()
    server.stop()
    server.zones = {"test": zone_text("test", ZONE_RECORDS),
                    "example.test": zone_text("example.test", lines)}
    server.start()


def with_resolver(command: list[str], resolv_conf: Path, stdin: bytes
                  ) -> subprocess.CompletedProcess[bytes]:
    """Run `command` with /etc/resolv.conf replaced by `resolv_conf` (its own mount
    namespace; the argument list is passed through, never a shell string)."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, str(resolv_conf),
                           *command], input=stdin, capture_output=True, timeout=60,
                          check=False)


def only_signature(message: bytes, keep: int) -> bytes:
    """`message` with every DKIM-Signature field but the `keep`-th removed (neither signs
    the other, so each verifies on its own)."""
    head, body = message.split(b"\n\n", 1)
    fields = re.split(rb"\n(?![ \t])", head)
    signatures = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
    kept = [f for f in fields
            if not f.lower().startswith(b"dkim-signature:") or f == signatures[keep]]
    return b"\n".join(kept) + b"\n\n" + body


def verifiers(resolv_conf: Path, message: bytes) -> list[tuple[str, bool, str]]:
    """(verifier and algorithm, verified, output) for each signature and both verifiers."""
    testmsg = ensure_package("opendkim-testmsg", "opendkim-tools")
    results = []
    for index, algorithm in enumerate(("rsa", "ed25519")):
        single = only_signature(message, index)
        for name, command in (("dkimverify", [str(DKIMVERIFY)]), ("opendkim", [testmsg])):
            proc = with_resolver(command, resolv_conf, single)
            output = (proc.stdout + proc.stderr).decode(errors="replace")
            results.append((f"{name}/{algorithm}", proc.returncode == 0, output))
    return results


def send_and_fetch(world: MailWorld, engine: EngineProcess, subject: str) -> bytes:
    before = world.peer.count_delivered(RECIPIENT)
    sent = (f"From: Alice <{ALICE}>\r\nTo: <{RECIPIENT}>\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "Signed and sealed.\r\n.leading dot\r\n").encode()
    submit(engine, ALICE, [RECIPIENT], sent)
    wait_until(lambda: world.peer.count_delivered(RECIPIENT) > before, 30, "Postfix delivery")
    wait_until(lambda: queue_empty(engine), 10, "an empty queue")
    return maildir_messages(world.peer, RECIPIENT)[-1]


@pytest.fixture(scope="module")
def resolv_conf(dns: KnotDns, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resolv") / "resolv.conf"
    path.write_text(f"nameserver {dns.address}\noptions timeout:2 attempts:1\n")
    return path


def selectors(message: bytes) -> list[str]:
    return re.findall(r"\bs=([\w-]+);", message.decode(errors="replace"))


def test_signed_mail_verifies_with_independent_verifiers(
        world: MailWorld, engine: EngineProcess, resolv_conf: Path) -> None:
    stored = send_and_fetch(world, engine, "dkim: signed by Mailstead")
    assert stored.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in stored
    assert b"a=ed25519-sha256" in stored
    assert b"d=example.test" in stored
    assert "dkim.signed" in engine.log_text()
    results = verifiers(resolv_conf, stored)
    assert [(name, ok) for name, ok, _ in results] == [
        ("dkimverify/rsa", True), ("opendkim/rsa", True),
        ("dkimverify/ed25519", True), ("opendkim/ed25519", True)], results

    # a body changed after signing fails everywhere
    changed = stored.replace(b"Signed and sealed.", b"Signed and altered.")
    assert [ok for _, ok, _ in verifiers(resolv_conf, changed)] == [False] * 4


def test_rotation_switches_only_after_dns_publishes(
        world: MailWorld, engine: EngineProcess, dns: KnotDns, resolv_conf: Path) -> None:
    old = selectors(send_and_fetch(world, engine, "dkim: before rotation"))
    out = cli(engine, "dkim", "rotate", "example.test")
    pending = re.findall(r"^(\S+)\._domainkey\.example\.test\. ", out, re.M)
    assert len(pending) == 2
    assert set(pending).isdisjoint(old)
    refused = cli(engine, "dkim", "rotate", "example.test", "--activate", status=1)
    assert refused.count("missing: ") == 2, refused
    assert "still signing with" in refused
    assert selectors(send_and_fetch(world, engine, "dkim: still old")) == old

    publish(dns, engine)          # `dns records` now lists the pending selectors too
    activated = cli(engine, "dkim", "rotate", "example.test", "--activate")
    assert "now signs with" in activated
    stored = send_and_fetch(world, engine, "dkim: after rotation")
    assert selectors(stored) == pending
    assert all(ok for _, ok, _ in verifiers(resolv_conf, stored)), verifiers(resolv_conf,
                                                                              stored)
