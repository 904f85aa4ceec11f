"""SIGKILL while messages for outside addresses are being queued: every 250 is in the spool.

Eight client threads send messages to an alias that forwards outside (so each one is queued,
not stored in a Maildir) and note the queue id of every 250. The engine is killed with
SIGKILL in the middle of that load and started again on the same data directory. Its DNS
resolver answers nothing, so queued mail stays queued: every acknowledged queue id must be
listed, every listed message must have its file, and no file may be without its row.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.engine import EngineProcess
from peers.dns import free_udp_tcp_port

THREADS = 8
KILL_AFTER = 150           # acknowledged messages before the SIGKILL
SENDER = "loader@client.test"


def _load(engine: EngineProcess, acked: list[str], lock: threading.Lock,
          stop: threading.Event) -> None:
    body = b"Subject: crash\r\n\r\n" + (b"x" * 78 + b"\r\n") * 50
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=5) as client:
                client.ehlo("loader.client.test")
                while not stop.is_set():
                    client.mail(SENDER)
                    client.rcpt("fwd@crash.test")
                    code, text = client.data(body)
                    if code == 250:
                        with lock:
                            acked.append(text.decode().rsplit(" ", 1)[1])
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)       # the engine is gone: try again until told to stop


def _listed(engine: EngineProcess) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), "queue",
         "--json", "list"], capture_output=True, text=True, timeout=60, check=True).stdout
    return {m["queue_id"] for m in json.loads(out)}


@pytest.mark.slow
def test_sigkill_during_enqueue_loses_no_acknowledged_message(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", outbound__dns_timeout=1,
                           outbound__resolver=f"127.0.0.1:{free_udp_tcp_port()}")
    engine.start()
    engine.add_domain("crash.test")
    engine.directory.add_alias("fwd@crash.test", "far@remote.test")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(engine, acked, lock, stop), daemon=True)
               for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.kill()
    stop.set()
    for thread in threads:
        thread.join(10)
    with lock:
        acknowledged = set(acked)
    assert len(acknowledged) >= KILL_AFTER
    engine.start()
    try:
        listed = _listed(engine)
        missing = acknowledged - listed
        assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"
        files = {p.name for p in (engine.data_dir / "queue" / "messages").iterdir()}
        assert files == listed, "files and rows disagree after recovery"
        assert "queue.message_lost" not in engine.log_text()
    finally:
        assert engine.stop() == 0
