"""Submission clients for tests: raw wire sessions on the STARTTLS and implicit-TLS ports,
with AUTH spoken by hand, and smtplib clients that trust the engine's certificate."""

from __future__ import annotations

import base64
import smtplib

# HOSTNAME, PASSWORD and client_context are re-exported: tests import them from here.
from harness.engine import HOSTNAME as HOSTNAME
from harness.engine import PASSWORD as PASSWORD
from harness.engine import EngineProcess
from harness.engine import client_context as client_context
from harness.smtp_wire import Reply, SMTPWire, greeted


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def plain(username: str, password: str = PASSWORD, authzid: str = "") -> str:
    """A SASL PLAIN response (RFC 4616), base64."""
    return b64(f"{authzid}\x00{username}\x00{password}")


def starttls_wire(engine: EngineProcess, source: str | None = None) -> SMTPWire:
    """A session on the submission port, inside STARTTLS, after the second EHLO."""
    wire = greeted(engine.submission_port, source=source)
    assert wire.command("STARTTLS").code == 220
    wire.sock = client_context(engine).wrap_socket(wire.sock, server_hostname=HOSTNAME)
    assert wire.command("EHLO client.example.org").code == 250
    return wire


def implicit_tls_wire(engine: EngineProcess, source: str | None = None) -> SMTPWire:
    """A session on the implicit-TLS port (465 style), after EHLO."""
    wire = SMTPWire(engine.submissions_port, source=source)
    wire.sock = client_context(engine).wrap_socket(wire.sock, server_hostname=HOSTNAME)
    assert wire.read_reply().code == 220
    assert wire.command("EHLO client.example.org").code == 250
    return wire


def auth_plain(wire: SMTPWire, username: str, password: str = PASSWORD) -> Reply:
    return wire.command(f"AUTH PLAIN {plain(username, password)}")


def logged_in(engine: EngineProcess, username: str, password: str = PASSWORD,
              source: str | None = None) -> SMTPWire:
    wire = starttls_wire(engine, source)
    reply = auth_plain(wire, username, password)
    assert reply.code == 235, str(reply)
    return wire


def smtp_client(engine: EngineProcess, username: str,
                password: str = PASSWORD) -> smtplib.SMTP:
    """smtplib over STARTTLS, logged in (the caller closes it)."""
    client = smtplib.SMTP("localhost", engine.submission_port, timeout=10,
                          local_hostname="client.example.org")
    client.starttls(context=client_context(engine))
    client.login(username, password)
    return client


def message(sender: str, to: str, subject: str = "test", extra: str = "") -> bytes:
    """A small message with From, To and Subject (and `extra` header lines)."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\n"
            "Hello.\r\n").encode()


def transaction(wire: SMTPWire, sender: str, recipients: list[str], content: bytes) -> Reply:
    """MAIL, RCPT, DATA on a logged-in session; returns the first refusal or the final reply."""
    reply = wire.command(f"MAIL FROM:<{sender}>")
    if reply.code != 250:
        return reply
    for recipient in recipients:
        reply = wire.command(f"RCPT TO:<{recipient}>")
        if reply.code != 250:
            wire.command("RSET")
            return reply
    reply = wire.command("DATA")
    if reply.code != 354:
        return reply
    lines = content.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                       for line in lines)
    wire.send(stuffed + b".\r\n")
    return wire.read_reply()
