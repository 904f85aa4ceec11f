"""DNSBL/DNSWL on the real engine with a real Knot serving the lists: a client listed in a
reject-worthy zone gets 550 5.7.1 at the end of DATA, one also on the allow list is
delivered, a URL to a listed domain is refused, and lists that never answer let mail
through within the timeout (fail open): a resolver that never answers, and, through a real
recursive resolver (Debian's Unbound), a list zone delegated to a server that swallows every
query. The engine listens on 127.0.0.1; clients bind other 127.0.0.x addresses to be other
hosts (1.0.0.127 is the reversed 127.0.0.1)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.smtp import replies
from harness.debian import ensure_package
from harness.engine import EngineProcess
from harness.smtp_wire import greeted
from peers.dns import KnotDns, free_udp_tcp_port, zone_text

pytestmark = pytest.mark.timeout(120)
RECORDS = [
    "1.0.0.127.bl A 127.0.0.2",          # listed: rejected
    "3.0.0.127.bl A 127.0.0.2",          # listed, but on the allow list too
    "3.0.0.127.wl A 127.0.10.2",
    "4.0.0.127.bl A 127.255.255.254",    # Spamhaus' "public resolver" error: not a listing
    "bad.example.uri A 127.0.1.2",
    "slow NS ns.slow",                   # delegated to a server that never answers
    "ns.slow A 127.0.0.99",
]
SWALLOWER = "127.0.0.99"
ZONES = {"dnsbl__ip_zones": "bl.dnsbl.test:6, wl.dnsbl.test:-3",
         "dnsbl__uri_zones": "uri.dnsbl.test:5",
         "dnsbl__reject_zones": "bl.dnsbl.test, uri.dnsbl.test"}


def start_engine(path: Path, **settings: object) -> EngineProcess:
    engine = EngineProcess(path, **{"dnsbl__enabled": True, "spam__enabled": True, **ZONES,
                                    **settings})
    engine.start()
    engine.add_domain("example.test")
    engine.add_account("alice@example.test")
    return engine


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    knot = KnotDns(tmp_path_factory.mktemp("dnsbl-knot"),
                   {"dnsbl.test": zone_text("dnsbl.test", RECORDS)})
    with knot:
        engine = start_engine(tmp_path_factory.mktemp("dnsbl") / "data",
                              outbound__resolver=knot.resolver_spec)
        try:
            yield engine
        finally:
            assert engine.stop() == 0, engine.log_text()[-3000:]


def send(mx: EngineProcess, source: str, body: str = "hello") -> str:
    """One transaction from `source`; the reply to the end of DATA."""
    with greeted(mx.smtp_port, source=source) as wire:
        for command in ("MAIL FROM:<a@sender.example>", "RCPT TO:<alice@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        wire.send(f"From: <a@sender.example>\r\nSubject: t\r\n\r\n{body}\r\n".encode())
        return str(wire.command("."))


def test_listed_client_is_rejected_with_the_generic_reply(mx: EngineProcess) -> None:
    assert send(mx, "127.0.0.1") == replies.POLICY_BLOCKED
    assert "bl.dnsbl.test" in mx.log_text()        # the log says which list, the client not


def test_allow_list_vouches_for_a_listed_client(mx: EngineProcess) -> None:
    assert send(mx, "127.0.0.3", "vouched").startswith("250 ")
    stored = [m for m in mx.messages("alice@example.test") if b"vouched" in m]
    assert len(stored) == 1
    # the spam check reports both listings' points (6 - 3)
    report = stored[0].split(b"\r\n\r\n")[0]
    assert b"DNSBL_bl.dnsbl.test=6" in report
    assert b"DNSWL_wl.dnsbl.test=-3" in report


def test_unlisted_and_error_answers_are_delivered(mx: EngineProcess) -> None:
    assert send(mx, "127.0.0.9").startswith("250 ")
    assert send(mx, "127.0.0.4").startswith("250 ")


def test_url_to_a_listed_domain_is_rejected(mx: EngineProcess) -> None:
    assert send(mx, "127.0.0.9", "buy at https://www.shop.bad.example/now") \
        == replies.POLICY_BLOCKED
    assert send(mx, "127.0.0.9", "read https://good.example/").startswith("250 ")


def test_silent_lists_fail_open_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))           # takes queries, never answers
        # the authentication check waits checks.dns_timeout on the same silent server
        engine = start_engine(tmp_path / "data", dnsbl__timeout_ms=500,
                              checks__authentication=False,
                              outbound__resolver=f"127.0.0.1:{silent.getsockname()[1]}")
        try:
            started = time.monotonic()
            assert send(engine, "127.0.0.1", "https://bad.example/").startswith("250 ")
            assert time.monotonic() - started < 3.0
        finally:
            assert engine.stop() == 0


@contextlib.contextmanager
def swallower(address: str) -> Iterator[None]:
    """UDP and TCP port 53 on `address` that take DNS queries and never answer."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket()
    try:
        udp.bind((address, 53))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, 53))
        tcp.listen(16)
        yield
    finally:
        udp.close()
        tcp.close()


@contextlib.contextmanager
def unbound(workdir: Path, knot: KnotDns) -> Iterator[str]:
    """Debian's Unbound, recursive for dnsbl.test through a stub zone to `knot`; yields
    its `outbound.resolver` spec."""
    binary = ensure_package("/usr/sbin/unbound", "unbound")
    port = free_udp_tcp_port()
    config = workdir / "unbound.conf"
    config.write_text(
        "server:\n"
        f"  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n"
        f'  username: ""\n  chroot: ""\n  directory: "{workdir}"\n'
        f'  pidfile: "{workdir / "unbound.pid"}"\n  use-syslog: no\n  verbosity: 1\n'
        "  do-not-query-localhost: no\n  module-config: \"iterator\"\n"
        "  access-control: 127.0.0.0/8 allow\n  local-zone: \"test.\" nodefault\n"
        "stub-zone:\n  name: \"dnsbl.test\"\n"
        f"  stub-addr: {knot.address}@{knot.port}\n")
    with open(workdir / "unbound.log", "wb") as log:
        proc = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        resolver = knot.resolver()
        resolver.port = port
        resolver.lifetime = 1.0
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(Exception):
                resolver.resolve("1.0.0.127.bl.dnsbl.test", "A")
                break
            assert proc.poll() is None, (workdir / "unbound.log").read_text()
            assert time.monotonic() < deadline, (workdir / "unbound.log").read_text()
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_list_delegated_to_a_silent_server_fails_open(tmp_path: Path) -> None:
    knot = KnotDns(tmp_path / "knot", {"dnsbl.test": zone_text("dnsbl.test", RECORDS)})
    (tmp_path / "unbound").mkdir()
    with knot, swallower(SWALLOWER), unbound(tmp_path / "unbound", knot) as spec:
        engine = start_engine(tmp_path / "data", dnsbl__timeout_ms=700,
                              checks__authentication=False, outbound__resolver=spec,
                              dnsbl__ip_zones="bl.slow.dnsbl.test:6, bl.dnsbl.test:6",
                              dnsbl__reject_zones="bl.slow.dnsbl.test, bl.dnsbl.test")
        try:
            started = time.monotonic()
            assert send(engine, "127.0.0.9").startswith("250 ")    # slow list: no answer
            assert time.monotonic() - started < 3.0
            # the answering list still works through the same resolver
            assert send(engine, "127.0.0.1") == replies.POLICY_BLOCKED
            assert "1 failed (bl.slow.dnsbl.test: timeout)" in engine.log_text()
        finally:
            assert engine.stop() == 0
