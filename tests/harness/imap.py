"""IMAP helpers for tests: imaplib clients over STARTTLS and implicit TLS that trust the
engine's certificate, a raw line client that sees each response as sent, and mail delivered
the way the world sends it (SMTP to the engine's MX)."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
import time

# HOSTNAME, PASSWORD and the contexts are re-exported: tests import them from here.
from harness.engine import HOSTNAME as HOSTNAME
from harness.engine import PASSWORD as PASSWORD
from harness.engine import EngineProcess
from harness.engine import client_context as client_context
from harness.engine import loopback_context as loopback_context

_LITERAL_END = re.compile(rb"\{(\d+)\+?\}\Z")


def starttls_client(engine: EngineProcess, user: str | None = None,
                    password: str = PASSWORD) -> imaplib.IMAP4:
    """imaplib on the STARTTLS port, inside TLS, logged in as `user` if given."""
    client = imaplib.IMAP4("127.0.0.1", engine.imap_port, timeout=15)
    client.starttls(loopback_context(engine))
    if user is not None:
        client.login(user, password)
    return client


def ssl_client(engine: EngineProcess, user: str | None = None,
               password: str = PASSWORD) -> imaplib.IMAP4_SSL:
    """imaplib on the implicit-TLS port, logged in as `user` if given."""
    client = imaplib.IMAP4_SSL("127.0.0.1", engine.imaps_port, ssl_context=loopback_context(engine),
                               timeout=15)
    if user is not None:
        client.login(user, password)
    return client


def deliver(engine: EngineProcess, to: str, subject: str, body: str = "hello\r\n") -> None:
    """Send a message to the engine's MX (it is in `to`'s INBOX once this returns)."""
    message = (f"From: sender@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\n{body}")
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=15) as smtp:
        smtp.sendmail("sender@example.org", [to], message.encode())


class ImapWire:
    """One IMAP connection spoken byte by byte (plain TCP, or TLS from the start)."""

    def __init__(self, port: int, timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None, rcvbuf: int | None = None) -> None:
        """`rcvbuf`: a small receive buffer, set before connecting (so the TCP window stays
        small), for a client that reads slower than the server writes."""
        if rcvbuf is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        self.sock: socket.socket = sock if tls is None else tls.wrap_socket(sock)
        self.timeout = timeout
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, line: str | bytes) -> None:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def start_tls(self, context: ssl.SSLContext) -> None:
        assert not self.buffer, f"plaintext left before TLS: {self.buffer!r}"
        self.sock = context.wrap_socket(self.sock)

    def read_line(self, timeout: float | None = None) -> bytes | None:
        """The next line (CRLF stripped) with any literal it announces appended, or None
        when the server closed the connection first; TimeoutError after `timeout`."""
        line = self.read_raw_line(timeout)
        if line is None:
            return None
        while (literal := _LITERAL_END.search(line)) is not None:
            line += b"\r\n" + self._octets(int(literal.group(1)), timeout)
            rest = self.read_raw_line(timeout)
            if rest is None:
                return line
            line += rest
        return line

    def read_until_tagged(self, tag: str, timeout: float | None = None) -> list[bytes]:
        """Every line up to and including the one tagged `tag`."""
        lines: list[bytes] = []
        while True:
            line = self.read_line(timeout)
            assert line is not None, f"closed before {tag}; got {lines!r}"
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def command(self, tag: str, text: str | bytes) -> list[bytes]:
        prefix = tag.encode() + b" "
        self.send_line(prefix + (text.encode() if isinstance(text, str) else text))
        return self.read_until_tagged(tag)

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within `timeout`, sending nothing more."""
        try:
            return self.read_line(timeout) is None
        except TimeoutError:
            return False

    def _fill(self, timeout: float | None) -> bool:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing more arrived; have {self.buffer[:200]!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            chunk = b""
        except TimeoutError:
            raise TimeoutError(f"nothing more arrived; have {self.buffer[:200]!r}") from None
        self.buffer += chunk
        return bool(chunk)

    def read_raw_line(self, timeout: float | None = None) -> bytes | None:
        """The next physical line (CRLF stripped), or None when the server closed first."""
        while b"\n" not in self.buffer:
            if not self._fill(timeout):
                return None
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.removesuffix(b"\r")

    def _octets(self, count: int, timeout: float | None) -> bytes:
        while len(self.buffer) < count:
            if not self._fill(timeout):
                raise ConnectionError("closed inside a literal")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ImapWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def logged_in_wire(engine: EngineProcess, user: str, password: str = PASSWORD) -> ImapWire:
    """A raw connection on the implicit-TLS port, greeted and logged in as `user`."""
    wire = ImapWire(engine.imaps_port, tls=loopback_context(engine))
    greeting = wire.read_line()
    assert greeting is not None
    assert greeting.startswith(b"* OK"), greeting
    reply = wire.command("L1", f'LOGIN "{user}" "{password}"')
    assert reply[-1].startswith(b"L1 OK"), reply
    return wire
