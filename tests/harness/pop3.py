"""POP3 helpers for tests: put messages into an account's INBOX the way delivery does,
poplib clients over STLS and implicit TLS that trust the engine's certificate, and a raw
line client (the SMTP one: it sends bytes and reads lines, which is all POP3 needs)."""

from __future__ import annotations

import os
import poplib
import uuid
from pathlib import Path

# HOSTNAME, PASSWORD and client_context are re-exported: tests import them from here.
from harness.engine import HOSTNAME as HOSTNAME
from harness.engine import PASSWORD as PASSWORD
from harness.engine import EngineProcess
from harness.engine import client_context as client_context
from harness.smtp_wire import SMTPWire


def put_message(maildir: Path, content: bytes) -> Path:
    """Deliver `content` into the Maildir's new/ (tmp/ first, then rename, as MX does)."""
    name = f"{uuid.uuid4().hex}.test"
    temp = maildir / "tmp" / name
    temp.write_bytes(content)
    target = maildir / "new" / name
    os.rename(temp, target)
    return target


def sample(number: int, lines: int = 3, extra: str = "") -> bytes:
    """A small message with a numbered Subject and `lines` body lines."""
    body = "".join(f"line {i} of message {number}\r\n" for i in range(1, lines + 1))
    return (f"From: sender@example.org\r\nTo: alice@example.test\r\n"
            f"Subject: message {number}\r\n{extra}\r\n{body}").encode()


def stls_client(engine: EngineProcess, user: str | None = None,
                password: str = PASSWORD) -> poplib.POP3:
    """poplib on the STLS port, inside TLS, logged in as `user` if given."""
    client = poplib.POP3("127.0.0.1", engine.pop3_port, timeout=10)
    client.stls(client_context(engine))
    if user is not None:
        client.user(user)
        client.pass_(password)
    return client


def ssl_client(engine: EngineProcess, user: str | None = None,
               password: str = PASSWORD) -> poplib.POP3_SSL:
    """poplib on the implicit-TLS port, logged in as `user` if given."""
    client = poplib.POP3_SSL("127.0.0.1", engine.pop3s_port, timeout=10,
                             context=client_context(engine))
    if user is not None:
        client.user(user)
        client.pass_(password)
    return client


def wire(engine: EngineProcess, tls: bool = False, timeout: float = 10.0) -> SMTPWire:
    """A raw connection (implicit TLS with `tls`), its greeting already read."""
    connection = SMTPWire(engine.pop3s_port if tls else engine.pop3_port, timeout=timeout)
    if tls:
        context = client_context(engine)
        connection.sock = context.wrap_socket(connection.sock, server_hostname=HOSTNAME)
    greeting = connection.read_line()
    assert greeting is not None
    assert greeting.startswith("+OK"), greeting
    return connection
