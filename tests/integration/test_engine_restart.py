"""The graceful restart (appliance/engine_restart.py) of a real engine: a setting stored in
mailstead.db while it runs is reported as not applied, `engine.restart` over the control
socket (or `mailstead engine restart`, or SIGUSR1 with several workers) re-executes the same
process, which then greets with the new value; an SMTP transaction in DATA when the restart
starts still gets its 250 and the message is delivered; IMAP sessions get `* BYE`."""

from __future__ import annotations

import contextlib
import imaplib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance import settings_store
from appliance.control import client as control
from appliance.control.engine_ops import pending
from appliance.control.messages import ControlError
from appliance.control.server import SOCKET_NAME
from appliance.settings import Settings
from appliance.settings_store import load_effective
from appliance.storage.db import open_database
from harness.e2e import wait_until
from harness.engine import HOSTNAME, PASSWORD, EngineProcess, loopback_context, wait_for_port
from harness.smtp_wire import SMTPWire

pytestmark = pytest.mark.timeout(120)
ALICE = "alice@example.test"
CHANGED = "mx.changed.example"


def status(engine: EngineProcess) -> dict[str, Any]:
    result = control.call(engine.data_dir / SOCKET_NAME, "engine.status")
    assert isinstance(result, dict)
    return result


def current_settings(engine: EngineProcess) -> Settings:
    return load_effective(engine.config_file, environ={}).settings


def store(engine: EngineProcess, name: str, text: str) -> None:
    conn = open_database(engine.data_dir)
    try:
        settings_store.store(conn, name, text)
    finally:
        conn.close()


def restarted(engine: EngineProcess, instance: str) -> bool:
    """Whether an engine other than `instance` answers on the control socket."""
    try:
        return bool(status(engine)["instance"] != instance)
    except (OSError, ControlError):
        return False


def wait_back(engine: EngineProcess, instance: str) -> dict[str, Any]:
    wait_until(lambda: restarted(engine, instance), 60, "the restarted engine")
    wait_for_port(engine.smtp_port, 30, engine.proc)
    wait_for_port(engine.imaps_port, 30, engine.proc)
    return status(engine)


def greeting(engine: EngineProcess) -> str:
    with SMTPWire(engine.smtp_port) as wire:
        return wire.read_reply().last


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    proc = EngineProcess(tmp_path / "data", auth__failure_delay_ms=0)
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(ALICE)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def fd_targets(pid: int) -> list[str]:
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):      # closed meanwhile
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return targets


def listening_sockets(pid: int) -> int:
    """How many TCP sockets of process `pid` listen (state 0A in /proc/net/tcp)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A":
                    listening.add(f"socket:[{fields[9]}]")
    return sum(1 for target in fd_targets(pid) if target in listening)


def test_restart_applies_a_stored_setting_in_the_same_process(engine: EngineProcess) -> None:
    assert greeting(engine).startswith(f"220 {HOSTNAME} ")
    before = status(engine)
    assert engine.proc is not None
    assert before["pid"] == engine.proc.pid
    assert pending(before["settings"], current_settings(engine)) == []
    assert listening_sockets(before["pid"]) == 7     # MX, submission x2, POP3 x2, IMAP x2
    log_fds = fd_targets(before["pid"]).count(str(engine.log_file.resolve()))   # stdout, stderr

    store(engine, "server.hostname", CHANGED)
    assert pending(before["settings"], current_settings(engine)) == ["server.hostname"]
    assert greeting(engine).startswith(f"220 {HOSTNAME} ")        # not applied yet

    answer = control.call(engine.data_dir / SOCKET_NAME, "engine.restart")
    assert answer["restarting"] is True
    assert answer["instance"] == before["instance"]
    after = wait_back(engine, before["instance"])
    assert greeting(engine).startswith(f"220 {CHANGED} ")
    assert after["pid"] == before["pid"]                 # re-executed, not a new process
    assert engine.proc is not None
    assert engine.proc.poll() is None
    assert after["fingerprint"] != before["fingerprint"]
    assert pending(after["settings"], current_settings(engine)) == []
    # Nothing leaked through the exec: the new image listens once on each port and has
    # its log open as often as the first one.
    assert listening_sockets(after["pid"]) == 7
    assert fd_targets(after["pid"]).count(str(engine.log_file.resolve())) == log_fds
    assert "engine.reexec" in engine.log_text()
    assert engine.stop() == 0           # and it still stops cleanly


def test_a_transaction_in_data_finishes_and_is_delivered(engine: EngineProcess) -> None:
    before = status(engine)
    wire = SMTPWire(engine.smtp_port, timeout=30)
    assert wire.read_reply().code == 220
    assert wire.command("EHLO client.example").code == 250
    assert wire.command("MAIL FROM:<bob@remote.example>").code == 250
    assert wire.command(f"RCPT TO:<{ALICE}>").code == 250
    assert wire.command("DATA").code == 354
    wire.send(b"From: bob@remote.example\r\nSubject: in flight\r\n\r\nfirst half\r\n")

    control.call(engine.data_dir / SOCKET_NAME, "engine.restart")
    # The engine is stopping: the listener is closed, our session is waited for.
    wait_until(lambda: "engine.stopping" in engine.log_text(), 10, "the engine stopping")
    wire.send(b"second half\r\n.\r\n")
    reply = wire.read_reply()
    assert reply.code == 250, reply
    wire.close()

    wait_back(engine, before["instance"])
    messages = engine.messages(ALICE)
    assert len(messages) == 1
    assert b"first half\nsecond half" in messages[0]
    with SMTPWire(engine.smtp_port) as fresh:           # a new connection works
        assert fresh.read_reply().code == 220
        assert fresh.command("EHLO client.example").code == 250


def test_imap_sessions_get_bye(engine: EngineProcess) -> None:
    before = status(engine)
    imap = imaplib.IMAP4_SSL("127.0.0.1", engine.imaps_port,
                             ssl_context=loopback_context(engine), timeout=30)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    control.call(engine.data_dir / SOCKET_NAME, "engine.restart")
    line = imap.readline()
    assert line.startswith(b"* BYE "), line         # RFC 9051 7.1.5
    imap.shutdown()
    wait_back(engine, before["instance"])
    again = imaplib.IMAP4_SSL("127.0.0.1", engine.imaps_port,
                              ssl_context=loopback_context(engine), timeout=30)
    assert again.login(ALICE, PASSWORD)[0] == "OK"
    again.logout()


def test_cli_restart_waits_until_the_engine_is_back(engine: EngineProcess) -> None:
    before = status(engine)
    store(engine, "server.hostname", CHANGED)
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), "engine",
         "restart"], capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"mail engine (pid {before['pid']}) is restarting\n")
    assert "restarted: running" in done.stdout
    assert status(engine)["instance"] != before["instance"]
    wait_for_port(engine.smtp_port, 30, engine.proc)
    assert greeting(engine).startswith(f"220 {CHANGED} ")


def test_cli_without_an_engine_says_so(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), "engine",
         "status"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "the mail engine is not running" in done.stderr


def test_several_workers_restart_together(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", engine__workers=2)
    with engine:
        assert engine.proc is not None
        supervisor = engine.proc.pid
        before = status(engine)
        assert before["pid"] != supervisor              # the primary answers
        store(engine, "server.hostname", CHANGED)
        engine.proc.send_signal(signal.SIGUSR1)         # the operator's way (systemd reload)
        after = wait_back(engine, before["instance"])
        assert after["pid"] != before["pid"]            # a new primary ...
        assert engine.proc.poll() is None               # ... under the same supervisor
        wait_until(lambda: engine.log_text().count('"engine.worker_started"') >= 4, 30,
                   "both workers started again")
        for _ in range(4):      # whichever worker the kernel picks greets with the new name
            assert greeting(engine).startswith(f"220 {CHANGED} ")
    assert engine.proc.returncode == 0


def test_sigterm_during_a_restart_stops_for_good(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", limits__shutdown_grace=3)
    with engine:
        engine.add_domain("example.test")
        engine.add_account(ALICE)
        wire = SMTPWire(engine.smtp_port, timeout=30)       # holds the stop in its grace
        assert wire.read_reply().code == 220
        assert wire.command("EHLO client.example").code == 250
        assert wire.command("MAIL FROM:<bob@remote.example>").code == 250
        assert wire.command(f"RCPT TO:<{ALICE}>").code == 250
        assert wire.command("DATA").code == 354
        control.call(engine.data_dir / SOCKET_NAME, "engine.restart")
        wait_until(lambda: "engine.stopping" in engine.log_text(), 10, "the engine stopping")
        assert engine.stop(timeout=20) == 0          # systemctl stop while restarting
        wire.close()
    assert "engine.reexec" not in engine.log_text()
