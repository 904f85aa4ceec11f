"""Early talkers (Postfix postscreen's pregreet test), with raw sockets.

RFC 5321 3.1: the client waits for the server's greeting. Spam software often does not: it
sends its commands as soon as the connection is up. The MX waits `limits.greeting_delay_ms`
before its 220; whoever sent anything by then gets a 554 instead and is disconnected.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire

DELAY_MS = 400
MX_SETTINGS = {"limits__greeting_delay_ms": DELAY_MS, "limits__max_connections_per_ip": 3}
HOSTNAME = "mx.mailstead.test"
EARLY = replies.EARLY_TALKER.format(hostname=HOSTNAME)
NewAccount = Callable[[str], str]


def test_client_talking_at_once_is_refused_and_closed(mx: EngineProcess) -> None:
    with SMTPWire(mx.smtp_port) as wire:
        wire.send(b"EHLO early.example.org\r\n")
        assert wire.read_line() == EARLY
        assert wire.is_closed()


def test_client_talking_during_the_delay_is_refused(mx: EngineProcess) -> None:
    with SMTPWire(mx.smtp_port) as wire:
        time.sleep(DELAY_MS / 4000)
        wire.send(b"Q")
        assert wire.read_line() == EARLY
        assert wire.is_closed()


def test_pipelined_transaction_before_the_greeting_delivers_nothing(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("spam")
    with SMTPWire(mx.smtp_port) as wire:
        wire.send(f"EHLO bot\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
                  "Subject: spam\r\n\r\nbuy\r\n.\r\nQUIT\r\n".encode())
        assert wire.read_line() == EARLY
        assert wire.is_closed()
    assert mx.messages(rcpt) == []


def test_patient_client_is_greeted_after_the_delay(
        mx: EngineProcess, new_account: NewAccount) -> None:
    rcpt = new_account("patient")
    started = time.monotonic()
    with SMTPWire(mx.smtp_port) as wire:
        greeting = wire.read_reply()
        waited = time.monotonic() - started
        assert greeting.code == 220
        assert DELAY_MS / 1000 - 0.05 <= waited < DELAY_MS / 1000 + 2
        assert wire.command("EHLO patient.example.org").code == 250
        assert str(wire.command("MAIL FROM:<a@example.org>")) == replies.SENDER_OK
        assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
        assert wire.command("DATA").code == 354
        wire.send(b"Subject: ok\r\n\r\nfine\r\n.\r\n")
        assert wire.read_reply().code == 250
    assert len(mx.messages(rcpt)) == 1


def test_refused_early_talkers_give_their_connection_slots_back(mx: EngineProcess) -> None:
    for _ in range(8):                          # more than the 3 allowed from one address
        with SMTPWire(mx.smtp_port) as wire:
            wire.send(b"HELO x\r\n")
            assert wire.read_line() == EARLY
    with SMTPWire(mx.smtp_port) as polite:
        assert polite.read_reply().code == 220


def test_client_that_closes_during_the_delay_costs_nothing(mx: EngineProcess) -> None:
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", mx.smtp_port))
        sock.close()
    time.sleep(DELAY_MS / 1000 + 0.2)
    with SMTPWire(mx.smtp_port) as wire:
        assert wire.read_reply().code == 220
    assert "Traceback" not in mx.log_text()
    assert "smtp.internal_error" not in mx.log_text()
