"""Forwarding set in the console's self-service pages, applied by the real engine: mail to
an account that forwards reaches the local target's Maildir and is queued for the remote one,
with or without a copy in the account's own mailbox."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from appliance.control import client
from appliance.control.server import SOCKET_NAME
from appliance.storage.account_settings import AccountSettings, Forwarding
from appliance.storage.db import open_database
from harness.engine import EngineProcess

DOMAIN = "example.test"
WAIT = 15.0


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """Accounts alice@ (forwards, keeps a copy), carol@ (forwards, no copy) and bob@; a
    resolver that never answers keeps remote copies in the queue."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    proc = EngineProcess(tmp_path_factory.mktemp("forwarding") / "data",
                         outbound__resolver=f"127.0.0.1:{sock.getsockname()[1]}",
                         queue__first_retry=3600)
    proc.start()
    proc.add_domain(DOMAIN)
    for name in ("alice", "bob", "carol"):
        proc.add_account(f"{name}@{DOMAIN}")
    store = AccountSettings(open_database(proc.data_dir))
    store.set_forwarding(f"alice@{DOMAIN}", Forwarding((f"bob@{DOMAIN}", "alice@elsewhere.org"),
                                                       keep_copy=True))
    store.set_forwarding(f"carol@{DOMAIN}", Forwarding((f"bob@{DOMAIN}",), keep_copy=False))
    try:
        yield proc
    finally:
        sock.close()
        assert proc.stop() == 0, proc.log_text()[-3000:]


def send(engine: EngineProcess, to: str, subject: str) -> None:
    message = f"From: dave@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=15) as smtp:
        smtp.sendmail("dave@example.org", [to], message.encode())


def holding(engine: EngineProcess, address: str, subject: str) -> bool:
    return any(f"Subject: {subject}".encode() in m for m in engine.messages(address))


def queued(engine: EngineProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.call(engine.data_dir / SOCKET_NAME, "queue.list")
    return found


def test_forward_with_a_copy_local_and_remote(engine: EngineProcess) -> None:
    send(engine, f"alice@{DOMAIN}", "for alice")
    assert holding(engine, f"alice@{DOMAIN}", "for alice")      # 250 means delivered
    assert holding(engine, f"bob@{DOMAIN}", "for alice")
    deadline = time.monotonic() + WAIT
    while not queued(engine):
        assert time.monotonic() < deadline, "the remote copy was not queued"
        time.sleep(0.05)
    [entry] = queued(engine)
    detail = client.call(engine.data_dir / SOCKET_NAME, "queue.show", queue_id=entry["queue_id"])
    assert [r["address"] for r in detail["recipient_list"]] == ["alice@elsewhere.org"]
    assert detail["sender"] == "dave@example.org"

def test_forward_without_a_copy(engine: EngineProcess) -> None:
    send(engine, f"carol@{DOMAIN}", "for carol")
    assert holding(engine, f"bob@{DOMAIN}", "for carol")
    assert not holding(engine, f"carol@{DOMAIN}", "for carol")
