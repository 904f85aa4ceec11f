"""The engine starts, accepts one message over real SMTP and stores it in the Maildir."""

from __future__ import annotations

import smtplib

from harness.engine import EngineProcess


def test_one_message_lands_in_maildir(engine: EngineProcess) -> None:
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=10) as client:
        refused = client.sendmail("sender@example.org", ["alice@example.test"],
                                  b"Subject: smoke\r\n\r\nhello\r\n")
    assert refused == {}
    (message,) = engine.messages("alice@example.test")
    assert message.startswith(b"Return-Path: <sender@example.org>\nReceived: from ")
    assert message.endswith(b"Subject: smoke\n\nhello\n")
