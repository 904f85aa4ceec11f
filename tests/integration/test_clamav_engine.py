"""The virus check in the real engine (EngineProcess) with a real clamd: infected mail is
refused at DATA with `554 5.7.1` on the MX and on submission and never stored; a stopped or
hung clamd gives `451 4.7.1`; fail-open accepts with an `X-Virus-Scan` header. The client sees
only the generic reply, the log names the queue id and the signature."""

from __future__ import annotations

import email
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.checks.clamav import UNAVAILABLE_HEADER
from appliance.smtp import replies
from harness import malware
from harness.engine import EngineProcess
from harness.smtp_wire import Reply, greeted
from harness.submission import logged_in, transaction
from peers.clamd import EICAR_NAME, PATTERN_NAME, ClamdInstance

DOMAIN = "example.test"
SENDER = "someone@example.org"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdInstance]:
    with ClamdInstance(tmp_path_factory.mktemp("clamd")) as instance:
        yield instance


def started_engine(data_dir: Path, **settings: Any) -> EngineProcess:
    engine = EngineProcess(data_dir, antivirus__enabled=True, auth__failure_delay_ms=0,
                           **settings)
    engine.start()
    engine.add_domain(DOMAIN)
    engine.add_account(ALICE)
    engine.add_account(BOB)
    return engine


@pytest.fixture(scope="module")
def mx(clamd: ClamdInstance, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[EngineProcess]:
    engine = started_engine(tmp_path_factory.mktemp("mx") / "data",
                            antivirus__clamd_socket=str(clamd.socket_path))
    yield engine
    assert engine.stop() == 0, engine.log_text()[-3000:]


def mx_send(engine: EngineProcess, content: bytes, recipient: str = ALICE) -> Reply:
    with greeted(engine.smtp_port) as wire:
        return transaction(wire, SENDER, [recipient], content)


def log_events(engine: EngineProcess, name: str) -> list[dict[str, Any]]:
    events = []
    for line in engine.log_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == name:
                events.append(entry)
    return events


def assert_refused_and_logged(engine: EngineProcess, reply: Reply, prefix: str,
                              signature: str) -> None:
    assert str(reply) == replies.POLICY_REJECTED
    assert signature not in str(reply)        # the client sees "policy", not the virus name
    refused = log_events(engine, f"{prefix}.message_refused")
    assert refused, engine.log_text()[-2000:]
    last = refused[-1]
    assert last["check"] == "clamav"
    assert signature in last["reason"]
    assert last["queue_id"]
    assert last["verdict"] == "reject"


# -- the MX --------------------------------------------------------------------------------

def test_clean_mail_is_accepted_and_stored(mx: EngineProcess) -> None:
    before = len(mx.messages(ALICE))
    reply = mx_send(mx, malware.clean(SENDER, ALICE))
    assert reply.code == 250, str(reply)
    stored = mx.messages(ALICE)
    assert len(stored) == before + 1
    assert b"X-Virus-Scan" not in stored[-1]


@pytest.mark.parametrize(("build", "signature"), [
    (malware.eicar, EICAR_NAME),
    (malware.eicar_zip, EICAR_NAME),
    (malware.eicar_zip_in_zip, EICAR_NAME),
    (malware.pattern_zip_in_zip, PATTERN_NAME),
])
def test_infected_mail_is_refused_at_data(mx: EngineProcess, build: malware.Builder,
                                          signature: str) -> None:
    before = len(mx.messages(BOB))
    reply = mx_send(mx, build(SENDER, BOB), BOB)
    assert_refused_and_logged(mx, reply, "smtp", signature)
    assert len(mx.messages(BOB)) == before          # nothing of it was stored


def test_session_goes_on_after_a_refusal(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port) as wire:
        assert transaction(wire, SENDER, [ALICE], malware.eicar(SENDER, ALICE)).code == 554
        assert transaction(wire, SENDER, [ALICE], malware.clean(SENDER, ALICE)).code == 250


# -- submission ----------------------------------------------------------------------------

def test_infected_submission_is_refused(mx: EngineProcess) -> None:
    before = len(mx.messages(BOB))
    with logged_in(mx, ALICE) as wire:
        reply = transaction(wire, ALICE, [BOB], malware.eicar_zip(ALICE, BOB))
        assert_refused_and_logged(mx, reply, "submission", EICAR_NAME)
        clean = transaction(wire, ALICE, [BOB], malware.clean(ALICE, BOB))
        assert clean.code == 250, str(clean)
    assert len(mx.messages(BOB)) == before + 1


# -- clamd unavailable ---------------------------------------------------------------------

def test_stopped_clamd_gives_451_and_nothing_is_stored(tmp_path: Path) -> None:
    clamd = ClamdInstance(tmp_path / "clamd")
    clamd.work_dir.mkdir()
    clamd.start()
    engine = started_engine(tmp_path / "data", antivirus__clamd_socket=str(clamd.socket_path))
    try:
        assert mx_send(engine, malware.clean(SENDER, ALICE)).code == 250
        clamd.stop()
        reply = mx_send(engine, malware.clean(SENDER, ALICE))
        assert str(reply) == replies.POLICY_DEFERRED
        assert len(engine.messages(ALICE)) == 1
        deferred = log_events(engine, "smtp.message_refused")[-1]
        assert deferred["verdict"] == "tempfail"
        assert "unreachable" in deferred["reason"]
    finally:
        clamd.stop()
        assert engine.stop() == 0


def test_fail_open_accepts_with_a_header(tmp_path: Path) -> None:
    engine = started_engine(tmp_path / "data", antivirus__fail_open=True,
                            antivirus__clamd_socket=str(tmp_path / "missing.sock"))
    try:
        reply = mx_send(engine, malware.clean(SENDER, ALICE))
        assert reply.code == 250, str(reply)
        stored = engine.messages(ALICE)
        assert len(stored) == 1
        name, _, value = UNAVAILABLE_HEADER.partition(": ")
        assert email.message_from_bytes(stored[0]).get_all(name) == [value]
        assert log_events(engine, "smtp.message_tagged"), "fail-open must not be silent"
    finally:
        assert engine.stop() == 0


def test_hung_clamd_gives_451_after_the_timeout(tmp_path: Path) -> None:
    hung = socket.create_server(("127.0.0.1", 0))      # listens, never accepts or answers
    port = hung.getsockname()[1]
    engine = started_engine(tmp_path / "data", antivirus__timeout=1,
                            antivirus__clamd_socket=f"127.0.0.1:{port}")
    try:
        started = time.monotonic()
        reply = mx_send(engine, malware.eicar(SENDER, ALICE))
        assert str(reply) == replies.POLICY_DEFERRED
        assert 0.9 <= time.monotonic() - started < 8
        assert engine.messages(ALICE) == []
    finally:
        hung.close()
        assert engine.stop() == 0
