"""Raw-socket SMTP transactions against the MX, for the hostile-input tests.

`open_transaction` gets a session to the point where message octets come next (after the
354 of DATA, or just after RCPT for BDAT); `assert_in_step` proves that afterwards the
session still answers one reply per command and delivers a fresh message.
"""

from __future__ import annotations

from pathlib import Path

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted

SENDER = "sender@example.org"


def open_transaction(mx: EngineProcess, rcpt: str, data: bool = True) -> SMTPWire:
    """A session after MAIL and RCPT, and after DATA's 354 unless `data` is False."""
    wire = greeted(mx.smtp_port)
    assert str(wire.command(f"MAIL FROM:<{SENDER}>")) == replies.SENDER_OK
    assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
    if data:
        reply = wire.command("DATA")
        assert reply.code == 354, str(reply)
    return wire


def assert_in_step(wire: SMTPWire, mx: EngineProcess, rcpt: str) -> None:
    """One reply per command still, and a small message goes through and is stored."""
    before = len(mx.messages(rcpt))
    assert str(wire.command("NOOP")) == replies.OK
    assert str(wire.command(f"MAIL FROM:<{SENDER}>")) == replies.SENDER_OK
    assert str(wire.command(f"RCPT TO:<{rcpt}>")) == replies.RECIPIENT_OK
    assert wire.command("DATA").code == 354
    wire.send(b"Subject: after\r\n\r\nstill in step\r\n.\r\n")
    assert wire.read_reply().code == 250
    stored = mx.messages(rcpt)
    assert len(stored) == before + 1
    assert stored[-1].endswith(b"\nstill in step\n") or stored[-1].endswith(
        b"\r\nstill in step\r\n")


def as_sent(stored: bytes) -> bytes:
    """The message as the client sent it: without our trace fields and our one
    Authentication-Results field, LF line ends."""
    lines = stored.replace(b"\r\n", b"\n").split(b"\n")
    start = 0
    while start < len(lines) and (lines[start].startswith(
        (b"Return-Path:", b"Received:", b"Authentication-Results:"))
                                  or (start and lines[start].startswith(b"\t"))):
        start += 1
    return b"\n".join(lines[start:])


def maildir_files(root: Path) -> dict[str, list[Path]]:
    """The files in a Maildir's tmp/, new/ and cur/."""
    return {sub: sorted((root / sub).iterdir()) for sub in ("tmp", "new", "cur")}
