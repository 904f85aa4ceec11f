"""The outbound queue in a running engine: aliases to outside addresses are queued, the
queue CLI (over the control socket and offline), DSN parameters, the free-space floor.

The engine's DNS resolver points at a port where nothing answers, so queued mail stays
queued (each attempt is deferred) and the tests can look at it.
"""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from peers.dns import free_udp_tcp_port

MESSAGE = b"From: <sender@example.org>\r\nSubject: forward me\r\n\r\nhello\r\n"


def dead_resolver() -> str:
    return f"127.0.0.1:{free_udp_tcp_port()}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path / "data", outbound__resolver=dead_resolver(),
                         outbound__dns_timeout=1)
    proc.start()
    proc.add_domain("example.test")
    proc.add_account("alice@example.test")
    proc.directory.add_alias("fwd@example.test", "someone@remote.test")
    proc.directory.add_alias("both@example.test", "alice@example.test")
    proc.directory.add_alias("both@example.test", "other@remote.test")
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            assert proc.stop() == 0, proc.log_text()[-3000:]


def queue_cli(engine: EngineProcess, *args: str, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), "queue",
         *args], capture_output=True, text=True, timeout=30, check=check)


def queue_json(engine: EngineProcess, *args: str) -> Any:
    return json.loads(queue_cli(engine, "--json", *args).stdout)


def send(engine: EngineProcess, recipients: list[str], mail_options: tuple[str, ...] = (),
         rcpt_options: tuple[str, ...] = ()) -> str:
    """Send one message; return the queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
        client.ehlo("client.example.org")
        assert client.has_extn("dsn")
        code, _ = client.mail("sender@example.org", list(mail_options))
        assert code == 250
        for recipient in recipients:
            code, text = client.rcpt(recipient, list(rcpt_options))
            assert code == 250, text
        code, text = client.data(MESSAGE)
    assert code == 250, text
    return text.decode().rsplit(" ", 1)[1]


def test_alias_to_an_outside_address_is_queued_and_listed(engine: EngineProcess) -> None:
    queue_id = send(engine, ["fwd@example.test"])
    listing = queue_cli(engine, "list").stdout
    assert queue_id in listing
    assert "<sender@example.org>" in listing
    shown = queue_json(engine, "show", queue_id)
    assert shown["sender"] == "sender@example.org"
    [recipient] = shown["recipient_list"]
    assert recipient["address"] == "someone@remote.test"
    assert recipient["orcpt"] == "rfc822;fwd@example.test"
    assert recipient["state"] == "queued"
    content = (engine.data_dir / "queue" / "messages" / queue_id).read_bytes()
    assert content.endswith(MESSAGE)
    assert b"Received: from client.example.org" in content


def test_alias_to_local_and_outside_delivers_and_queues(engine: EngineProcess) -> None:
    queue_id = send(engine, ["both@example.test"])
    assert len(engine.messages("alice@example.test")) == 1
    assert [r["address"] for r in queue_json(engine, "show", queue_id)["recipient_list"]] == [
        "other@remote.test"]


def test_dsn_parameters_are_accepted_and_kept(engine: EngineProcess) -> None:
    queue_id = send(engine, ["fwd@example.test"], ("RET=HDRS", "ENVID=Env+2B42"),
                    ("NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;Orig+2BX@Example.org"))
    shown = queue_json(engine, "show", queue_id)
    assert (shown["ret"], shown["envid"]) == ("HDRS", "Env+42")
    [recipient] = shown["recipient_list"]
    assert recipient["notify"] == ["FAILURE", "DELAY"]
    assert recipient["orcpt"] == "rfc822;Orig+X@Example.org"


def test_malformed_dsn_parameters_get_501(engine: EngineProcess) -> None:
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
        client.ehlo("client.example.org")
        code, text = client.mail("sender@example.org", ["RET=BODY"])
        assert f"{code} {text.decode()}" == replies.BAD_DSN_PARAMETER
        assert client.mail("sender@example.org")[0] == 250
        code, text = client.rcpt("fwd@example.test", ["NOTIFY=NEVER,SUCCESS"])
        assert f"{code} {text.decode()}" == replies.BAD_DSN_PARAMETER


def test_queue_cli_round_trip_online_and_offline(engine: EngineProcess) -> None:
    first, second = send(engine, ["fwd@example.test"]), send(engine, ["fwd@example.test"])
    assert {m["queue_id"] for m in queue_json(engine, "list")} == {first, second}
    assert queue_json(engine, "retry", first) == {"queue_id": first, "recipients": 1}
    assert queue_json(engine, "flush")["recipients"] == 2
    assert f"{first}: deleted" in queue_cli(engine, "delete", first).stdout
    assert [m["queue_id"] for m in queue_json(engine, "list")] == [second]
    failed = queue_cli(engine, "show", first, check=False)
    assert failed.returncode == 2
    assert "no queued message" in failed.stderr
    assert engine.stop() == 0
    assert not (engine.data_dir / "control.sock").exists()
    # offline: straight on the spool database
    assert [m["queue_id"] for m in queue_json(engine, "list")] == [second]
    assert queue_json(engine, "show", second)["recipient_list"][0]["address"] == (
        "someone@remote.test")
    assert queue_json(engine, "delete", second)["deleted"] is True
    assert "queue is empty" in queue_cli(engine, "list").stdout
    assert list((engine.data_dir / "queue" / "messages").iterdir()) == []


def test_control_socket_is_private(engine: EngineProcess) -> None:
    assert (engine.data_dir / "control.sock").stat().st_mode & 0o777 == 0o600


def test_free_space_floor_gives_452(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "data", limits__min_free_space="100%") as engine:
        engine.add_domain("example.test")
        engine.add_account("alice@example.test")
        with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
            client.ehlo("client.example.org")
            code, text = client.mail("sender@example.org")
            assert f"{code} {text.decode()}" == replies.INSUFFICIENT_STORAGE
            assert client.noop()[0] == 250             # the session goes on
        assert engine.messages("alice@example.test") == []


def test_free_space_floor_counts_the_announced_size(tmp_path: Path) -> None:
    mib = 1024 * 1024
    # about 200 MiB above the floor, and a SIZE 800 MiB beyond: other work on the machine
    # may free or fill some disk meanwhile without changing either answer
    floor = max(_free_bytes(tmp_path) - 200 * mib, 0)
    with EngineProcess(tmp_path / "data", limits__min_free_space=str(floor),
                       limits__max_message_size=1024 * mib) as engine, \
            smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
        client.ehlo("client.example.org")
        assert client.mail("sender@example.org", ["SIZE=1000"])[0] == 250
        client.rset()
        code, text = client.mail("sender@example.org", [f"SIZE={1000 * mib}"])
        assert f"{code} {text.decode()}" == replies.INSUFFICIENT_STORAGE


def _free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_queue_survives_a_restart(engine: EngineProcess) -> None:
    queue_id = send(engine, ["fwd@example.test"])
    engine.kill()
    engine.start()
    assert [m["queue_id"] for m in queue_json(engine, "list")] == [queue_id]
    time.sleep(0.2)
    assert "queue.recovered" in engine.log_text()
