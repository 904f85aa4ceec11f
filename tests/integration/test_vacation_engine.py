"""Vacation replies in the real engine (RFC 3834): a message to an account that is away gets
one reply per sender (Auto-Submitted: auto-replied, null reverse-path, threaded), through the
Maildir for a local sender and the outbound queue for a remote one; lists, auto-replies and
repeat senders get none."""

from __future__ import annotations

import json
import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest

from appliance.control import client
from appliance.control.server import SOCKET_NAME
from appliance.storage.account_settings import AccountSettings, Vacation
from appliance.storage.db import open_database
from harness.engine import EngineProcess
from harness.submission import smtp_client

DOMAIN = "example.test"
AWAY = f"away@{DOMAIN}"
OTHER_AWAY = f"holiday@{DOMAIN}"
WAIT = 15.0


@pytest.fixture(scope="module")
def silent_dns() -> Iterator[str]:
    """A resolver that never answers: remote replies stay in the queue, deferred."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, silent_dns: str) -> Iterator[EngineProcess]:
    """Accounts away@ and holiday@ with their vacation on (set before any mail arrives),
    and senders bob@, carol@, dave@, erin@ and gina@."""
    proc = EngineProcess(tmp_path_factory.mktemp("vacation") / "data",
                         outbound__resolver=silent_dns, queue__first_retry=3600)
    proc.start()
    proc.add_domain(DOMAIN)
    for name in ("away", "holiday", "bob", "carol", "dave", "erin", "gina"):
        proc.add_account(f"{name}@{DOMAIN}")
    store = AccountSettings(open_database(proc.data_dir))
    store.set_vacation(AWAY, Vacation(True, "Away until Monday", "I am away.\nAway"))
    store.set_vacation(OTHER_AWAY, Vacation(True, "On holiday", "Back soon."))
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def send(engine: EngineProcess, sender: str, to: str, subject: str, extra: str = "") -> None:
    message = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n{extra}\r\nHello.\r\n")
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=15) as smtp:
        smtp.sendmail(sender, [to], message.encode())


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def events(engine: EngineProcess, name: str) -> list[dict[str, Any]]:
    found = []
    for line in engine.log_text().splitlines():
        if f'"event": "{name}"' in line:
            found.append(json.loads(line))
    return found


def replies(engine: EngineProcess, address: str) -> list[bytes]:
    return [m for m in engine.messages(address) if b"Auto-Submitted: auto-replied" in m]


def test_a_local_sender_gets_one_reply(engine: EngineProcess) -> None:
    send(engine, f"bob@{DOMAIN}", AWAY, "lunch on friday")
    [reply] = wait_for(lambda: replies(engine, f"bob@{DOMAIN}"), "the vacation reply")
    message = message_from_bytes(reply, policy=policy.default)
    assert message["Return-Path"] == "<>"                     # the null reverse-path
    assert message["From"] == AWAY
    assert message["To"] == f"bob@{DOMAIN}"
    assert message["Subject"] == "Away until Monday"
    assert message["In-Reply-To"] == "<lunch.on.friday@example.org>"
    body = message.get_body()
    assert body is not None
    assert "I am away." in body.get_content()
    send(engine, f"bob@{DOMAIN}", AWAY, "lunch on saturday")
    wait_for(lambda: [e for e in events(engine, "vacation.skipped")
                      if e.get("reason") == "answered recently"], "the repeat to be skipped")
    assert len(replies(engine, f"bob@{DOMAIN}")) == 1


def test_each_away_account_answers_for_itself(engine: EngineProcess) -> None:
    send(engine, f"carol@{DOMAIN}", OTHER_AWAY, "question one")
    [reply] = wait_for(lambda: replies(engine, f"carol@{DOMAIN}"), "the holiday reply")
    assert b"Subject: On holiday" in reply


@pytest.mark.parametrize(("extra", "reason"), [
    ("List-Id: <news.example.org>\r\n", "mailing list"),
    ("Auto-Submitted: auto-replied\r\n", "auto-submitted"),
    ("Precedence: bulk\r\n", "bulk"),
])
def test_no_reply_to_lists_bulk_or_auto_replies(engine: EngineProcess, extra: str,
                                                reason: str) -> None:
    send(engine, f"dave@{DOMAIN}", AWAY, f"not for a reply {reason}", extra)
    wait_for(lambda: [e for e in events(engine, "vacation.skipped")
                      if e.get("reason") == reason], f"the {reason} skip")
    assert replies(engine, f"dave@{DOMAIN}") == []


def test_no_reply_to_mail_for_someone_not_away(engine: EngineProcess) -> None:
    send(engine, f"erin@{DOMAIN}", f"bob@{DOMAIN}", "not away")
    send(engine, f"erin@{DOMAIN}", OTHER_AWAY, "away marker")
    wait_for(lambda: replies(engine, f"erin@{DOMAIN}"), "the marker's reply")
    assert len(replies(engine, f"erin@{DOMAIN}")) == 1       # only from holiday@


def test_a_remote_sender_is_answered_through_the_queue(engine: EngineProcess) -> None:
    send(engine, "frank@remote.example.org", AWAY, "from afar")
    [accepted] = wait_for(lambda: [e for e in events(engine, "smtp.accepted")
                                   if e["sender"] == "frank@remote.example.org"], "the log")
    [sent] = wait_for(lambda: [e for e in events(engine, "vacation.sent")
                               if e["about"] == accepted["queue_id"]], "the reply")
    path = engine.data_dir / SOCKET_NAME
    assert sent["queue_id"] in {m["queue_id"] for m in client.call(path, "queue.list")}
    detail = client.call(path, "queue.show", queue_id=sent["queue_id"])
    assert detail["sender"] == ""
    assert [r["address"] for r in detail["recipient_list"]] == ["frank@remote.example.org"]


def test_a_colleague_on_submission_is_answered(engine: EngineProcess) -> None:
    sender = f"gina@{DOMAIN}"
    with smtp_client(engine, sender) as smtp:
        smtp.sendmail(sender, [AWAY], f"From: {sender}\r\nTo: {AWAY}\r\nSubject: hi\r\n"
                                      "Message-ID: <gina.1@example.test>\r\n\r\nHello.\r\n")
    [reply] = wait_for(lambda: replies(engine, sender), "the reply to a submitted message")
    assert b"In-Reply-To: <gina.1@example.test>" in reply
