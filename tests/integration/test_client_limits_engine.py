"""Per-client rate limits on the real engine: new connections per minute (421 4.7.0 instead
of the greeting) and messages per minute (450 4.7.1 to MAIL), counted per client address;
exempt networks are never limited. Clients bind 127.0.0.x to be other hosts."""

from __future__ import annotations

import pytest

from appliance.smtp import replies
from harness.engine import HOSTNAME, EngineProcess
from harness.smtp_wire import SMTPWire, greeted

pytestmark = pytest.mark.timeout(60)
CONNECTIONS = 3
MESSAGES = 2
MX_SETTINGS = {"client_limits__connections_per_minute": CONNECTIONS,
               "client_limits__messages_per_minute": MESSAGES,
               "client_limits__exempt_networks": "127.0.0.40/32"}


def first_line(mx: EngineProcess, source: str) -> str:
    with SMTPWire(mx.smtp_port, source=source) as wire:
        line = wire.read_line()
        assert line is not None
        if not line.startswith("220 "):
            assert wire.is_closed(), f"still open after {line!r}"
        return line


def test_connections_over_the_rate_get_421(mx: EngineProcess) -> None:
    greetings = [first_line(mx, "127.0.0.20") for _ in range(CONNECTIONS + 1)]
    assert all(g.startswith("220 ") for g in greetings[:CONNECTIONS])
    assert greetings[-1] == replies.CONNECTION_RATE_EXCEEDED.format(hostname=HOSTNAME)
    assert first_line(mx, "127.0.0.21").startswith("220 ")       # other clients are served
    assert "smtp.connection_rate_exceeded" in mx.log_text()


def test_messages_over_the_rate_get_450(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port, source="127.0.0.30") as wire:
        for _ in range(MESSAGES):
            assert wire.command("MAIL FROM:<a@sender.example>").code == 250
            assert wire.command("RSET").code == 250
        assert str(wire.command("MAIL FROM:<a@sender.example>")) \
            == replies.MESSAGE_RATE_EXCEEDED
        assert str(wire.command("NOOP")) == replies.OK              # the session goes on
    with greeted(mx.smtp_port, source="127.0.0.31") as other:
        assert other.command("MAIL FROM:<a@sender.example>").code == 250


def test_exempt_networks_are_not_limited(mx: EngineProcess) -> None:
    for _ in range(CONNECTIONS + 2):
        with greeted(mx.smtp_port, source="127.0.0.40") as wire:
            for _ in range(MESSAGES + 1):
                assert wire.command("MAIL FROM:<a@sender.example>").code == 250
                assert wire.command("RSET").code == 250
