"""Queue -> real transport -> a real SMTP peer, with a real DNS server (Knot) for the MX.

The peer is an aiosmtpd sink in the test process on a free loopback port (which stands for
port 25): it takes everything except `reject@sink.test`, which it refuses with 550. These
tests cover the runner end to end: delivery, a bounce that lands in the local sender's
Maildir, and a peer that is down until after the engine was killed and restarted.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from harness.engine import EngineProcess, free_port
from peers.dns import KnotDns, zone_text

SENDER = "alice@example.test"


class Sink:
    """Collects what the peer accepted."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.startswith("reject@"):
            return "550 5.1.1 <reject@sink.test>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.content is not None
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return "250 2.0.0 Ok: queued"


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    zones = {"sink.test": zone_text("sink.test", ["@ MX 10 mx", "mx A 127.0.0.1"])}
    with KnotDns(tmp_path_factory.mktemp("knot"), zones) as server:
        yield server


def start_sink(port: int) -> tuple[Controller, Sink]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port,
                            server_hostname="peer.sink.test")
    controller.start()
    return controller, sink


def make_engine(tmp_path: Path, dns: KnotDns, port: int) -> EngineProcess:
    engine = EngineProcess(tmp_path / "data", outbound__resolver=dns.resolver_spec,
                           outbound__port=port, outbound__mta_sts=False,
                           outbound__dns_timeout=2, outbound__connect_timeout=2,
                           queue__first_retry=1, queue__max_retry=1)
    engine.start()
    engine.add_domain("example.test")
    engine.add_account(SENDER)
    engine.directory.add_alias("fwd@example.test", "target@sink.test")
    engine.directory.add_alias("rej@example.test", "reject@sink.test")
    return engine


def send(engine: EngineProcess, recipients: list[str], subject: str = "via the queue",
         **options: Any) -> None:
    message = f"From: <{SENDER}>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
        assert not client.sendmail(SENDER, recipients, message, **options)


def wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def queue_files(engine: EngineProcess) -> list[Path]:
    return list((engine.data_dir / "queue" / "messages").iterdir())


def test_delivery_and_bounce(tmp_path: Path, dns: KnotDns) -> None:
    port = free_port()
    controller, sink = start_sink(port)
    engine = make_engine(tmp_path, dns, port)
    try:
        send(engine, ["fwd@example.test"], rcpt_options=["NOTIFY=FAILURE"])
        wait(lambda: bool(sink.received) and not queue_files(engine))
        sender, recipients, content = sink.received[0]
        assert (sender, recipients) == (SENDER, ["target@sink.test"])
        assert b"Subject: via the queue" in content

        send(engine, ["rej@example.test"], subject="to be refused",
             mail_options=["RET=FULL", "ENVID=E1"])
        wait(lambda: bool(engine.messages(SENDER)) and not queue_files(engine))
        report = email.message_from_bytes(engine.messages(SENDER)[0],
                                          policy=email.policy.default)
        assert report.get_content_type() == "multipart/report"
        assert report["To"] == SENDER
        parts: list[Any] = list(report.iter_parts())
        _human, status, returned = parts
        per_message, per_recipient = status.get_payload()
        assert per_message["Original-Envelope-Id"] == "E1"
        assert per_recipient["Final-Recipient"] == "rfc822; reject@sink.test"
        assert per_recipient["Original-Recipient"] == "rfc822; rej@example.test"
        assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "5.1.1")
        assert "550 5.1.1" in per_recipient["Diagnostic-Code"]
        assert returned.get_content_type() == "message/rfc822"
        assert returned.get_payload()[0]["Subject"] == "to be refused"
    finally:
        engine.stop()
        controller.stop()


def test_peer_down_then_engine_killed_then_delivered_after_restart(
        tmp_path: Path, dns: KnotDns) -> None:
    port = free_port()                  # nothing listens yet: connections are refused
    engine = make_engine(tmp_path, dns, port)
    controller = None
    try:
        send(engine, ["fwd@example.test"])
        wait(lambda: "delivery.result" in engine.log_text())
        assert len(queue_files(engine)) == 1
        engine.kill()
        controller, sink = start_sink(port)
        engine.start()
        wait(lambda: bool(sink.received) and not queue_files(engine))
        assert sink.received[0][1] == ["target@sink.test"]
        assert engine.messages(SENDER) == []           # no bounce, no delay warning
    finally:
        engine.stop()
        if controller is not None:
            controller.stop()


class SlowSink(Sink):
    """A peer that takes a while for each message, so a SIGKILL finds attempts in flight."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.slow
def test_sigkill_during_delivery_loses_nothing(tmp_path: Path, dns: KnotDns) -> None:
    """At-least-once: after a SIGKILL mid-delivery and a restart, every message reaches the
    peer; a duplicate is possible only for an attempt the peer had accepted before the kill."""
    port = free_port()
    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port,
                            server_hostname="peer.sink.test")
    controller.start()
    engine = make_engine(tmp_path, dns, port)
    total = 40
    try:
        for n in range(total):
            send(engine, ["fwd@example.test"], subject=f"crash-{n}")
        wait(lambda: len(sink.received) >= 8)
        engine.kill()
        before_kill = len(sink.received)
        engine.start()
        wait(lambda: not queue_files(engine), timeout=60)
        subjects = [_subject(content) for _s, _r, content in sink.received]
        assert set(subjects) == {f"crash-{n}" for n in range(total)}
        duplicates = len(subjects) - total
        print(f"SIGKILL during delivery: {duplicates} duplicate(s) of {total} messages")
        assert duplicates <= before_kill        # only attempts that were under way
    finally:
        engine.stop()
        controller.stop()


def _subject(content: bytes) -> str:
    message = email.message_from_bytes(content, policy=email.policy.default)
    return str(message["Subject"])
