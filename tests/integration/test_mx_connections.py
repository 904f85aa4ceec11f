"""Connection admission: the per-address and total limits answer 421 instead of the greeting,
and every way a session can end gives its slot back.

Loopback is all of 127.0.0.0/8 on Linux, so clients bind 127.0.0.2, 127.0.0.3, ... to look
like different hosts.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted

PER_IP = 2
TOTAL = 4
MX_SETTINGS = {"limits__max_connections_per_ip": PER_IP, "limits__max_connections": TOTAL}
HOSTNAME = "mx.mailstead.test"


def refused_with(port: int, source: str) -> str:
    """Connect from `source`; return the first line, which must be followed by a close."""
    with SMTPWire(port, source=source) as wire:
        line = wire.read_line()
        assert line is not None
        if not line.startswith("220 "):
            assert wire.is_closed(), f"still open after {line!r}"
        return line


def wait_admitted(port: int, source: str, timeout: float = 3.0) -> SMTPWire:
    """Connect from `source` until the server greets (slots are released asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        wire = SMTPWire(port, source=source)
        line = wire.read_line()
        if line is not None and line.startswith("220 "):
            return wire
        wire.close()
        assert time.monotonic() < deadline, f"still refused: {line!r}"
        time.sleep(0.05)


def test_extra_connection_from_one_address_gets_421(mx: EngineProcess) -> None:
    held = [greeted(mx.smtp_port, source="127.0.0.1") for _ in range(PER_IP)]
    try:
        assert refused_with(mx.smtp_port, "127.0.0.1") == replies.TOO_MANY_FROM_YOU.format(
            hostname=HOSTNAME)
        with greeted(mx.smtp_port, source="127.0.0.2") as other:   # other hosts are served
            assert str(other.command("NOOP")) == replies.OK
        for wire in held:                                          # and so are the first two
            assert str(wire.command("NOOP")) == replies.OK
    finally:
        for wire in held:
            wire.close()


def test_connections_over_the_total_get_421(mx: EngineProcess) -> None:
    sources = ["127.0.0.11", "127.0.0.11", "127.0.0.12", "127.0.0.12"]
    held = [wait_admitted(mx.smtp_port, source) for source in sources]
    try:
        assert refused_with(mx.smtp_port, "127.0.0.13") == (
            replies.TOO_MANY_CONNECTIONS.format(hostname=HOSTNAME))
    finally:
        for wire in held:
            wire.close()
    wait_admitted(mx.smtp_port, "127.0.0.13").close()


def _quit(wire: SMTPWire) -> None:
    assert str(wire.command("QUIT")) == replies.BYE
    assert wire.is_closed()


def _close(wire: SMTPWire) -> None:
    wire.close()


def _reset(wire: SMTPWire) -> None:
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wire.close()


def _mid_data(wire: SMTPWire) -> None:
    wire.command("MAIL FROM:<sender@example.org>")
    wire.command("RCPT TO:<alice@example.test>")
    assert wire.command("DATA").code == 354
    wire.send(b"Subject: cut\r\n\r\nhalf a mess")
    _reset(wire)


def _bogus_commands(wire: SMTPWire) -> None:
    for _ in range(4):
        assert str(wire.command(b"BOGUS")) == replies.SYNTAX_ERROR
    assert wire.command(b"BOGUS").code == 502
    assert wire.is_closed()


def _failed_tls(wire: SMTPWire) -> None:
    assert str(wire.command("STARTTLS")) == replies.READY_FOR_TLS
    wire.send(b"this is not a TLS ClientHello\r\n" * 20)
    assert wire.is_closed()


def _half_close(wire: SMTPWire) -> None:
    wire.sock.shutdown(socket.SHUT_WR)                   # half-close: EOF to the server
    assert wire.is_closed()


ENDINGS: dict[str, Callable[[SMTPWire], None]] = {
    "quit": _quit, "close": _close, "reset": _reset, "reset_mid_data": _mid_data,
    "bogus_commands": _bogus_commands, "failed_tls": _failed_tls,
    "half_close": _half_close,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_way_of_ending_gives_the_slot_back(mx: EngineProcess, ending: str) -> None:
    source = f"127.0.1.{list(ENDINGS).index(ending) + 1}"
    for _ in range(3):                           # more sessions than the per-address limit
        wire = wait_admitted(mx.smtp_port, source)
        wire.command("EHLO client.example.org")
        ENDINGS[ending](wire)
    held = [wait_admitted(mx.smtp_port, source) for _ in range(PER_IP)]
    for wire in held:
        assert str(wire.command("NOOP")) == replies.OK
        wire.close()
