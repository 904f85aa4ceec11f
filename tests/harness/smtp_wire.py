"""A raw SMTP client over one loopback socket, for tests that need exact bytes on the wire.

smtplib hides what the server really sent (it joins multi-line replies and raises on some
codes); these tests must see each reply line as it came, send bytes no client would, and
notice when the server closes the connection.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

# RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
#                            Reply-code [ SP textstring ] CRLF
REPLY_LINE = re.compile(rb"[2-5][0-9][0-9](?:[ -][^\r\n]*)?")
# RFC 3463 2: status-code = class "." subject "." detail
ENHANCED_CODE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


class ConnectionClosed(Exception):  # noqa: N818 - a state, not an error of ours
    """The server closed the connection before a full reply arrived."""


@dataclass(frozen=True)
class Reply:
    """One complete (possibly multi-line) SMTP reply, lines without CRLF."""

    lines: tuple[str, ...]

    @property
    def code(self) -> int:
        return int(self.lines[-1][:3])

    @property
    def last(self) -> str:
        return self.lines[-1]

    def __str__(self) -> str:
        return "\n".join(self.lines)


class SMTPWire:
    """One SMTP connection spoken byte by byte."""

    def __init__(self, port: int, timeout: float = 10.0, host: str = "127.0.0.1",
                 source: str | None = None) -> None:
        """Connect to `host`:`port`, from the loopback address `source` if given."""
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=None if source is None else (source, 0))
        self.timeout = timeout
        self._buffer = b""

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, line: str | bytes) -> None:
        """Send one line; CRLF is added."""
        data = line.encode("utf-8") if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def command(self, line: str | bytes) -> Reply:
        """Send one command line and return the complete reply to it."""
        self.send_line(line)
        return self.read_reply()

    # -- receiving -------------------------------------------------------------------------

    def read_raw_line(self, timeout: float | None = None) -> bytes | None:
        """The next line as sent (CRLF stripped), or None when the server closed first.

        Raises:
            TimeoutError: nothing complete arrived within `timeout` (default: the socket's).
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line; have {self._buffer!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if self._buffer:
                    raise ConnectionClosed(f"closed after a partial line {self._buffer!r}")
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.removesuffix(b"\r")

    def read_line(self, timeout: float | None = None) -> str | None:
        line = self.read_raw_line(timeout)
        return None if line is None else line.decode("utf-8", errors="replace")

    def read_reply(self, timeout: float | None = None) -> Reply:
        """Read lines up to the last line of one reply (`NNN ` rather than `NNN-`).

        Raises:
            ConnectionClosed: the server closed the connection first.
            AssertionError: a line is not a well-formed reply line.
        """
        lines: list[str] = []
        while True:
            raw = self.read_raw_line(timeout)
            if raw is None:
                raise ConnectionClosed(f"connection closed; reply so far {lines!r}")
            assert REPLY_LINE.fullmatch(raw), f"malformed reply line {raw!r} after {lines!r}"
            lines.append(raw.decode("utf-8", errors="replace"))
            assert raw[:3] == lines[0][:3].encode(), f"reply code changed mid-reply: {lines!r}"
            if raw[3:4] != b"-":
                return Reply(tuple(lines))

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF) within `timeout`, sending nothing."""
        try:
            extra = self.read_raw_line(timeout)
        except TimeoutError:
            return False
        except ConnectionClosed:
            return True
        return extra is None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SMTPWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def greeted(port: int, ehlo: str | None = "client.example.org", timeout: float = 10.0,
            source: str | None = None) -> SMTPWire:
    """Connect, check the 220 greeting and (unless `ehlo` is None) say EHLO."""
    wire = SMTPWire(port, timeout, source=source)
    greeting = wire.read_reply()
    assert greeting.code == 220, str(greeting)
    if ehlo is not None:
        reply = wire.command(f"EHLO {ehlo}")
        assert reply.code == 250, str(reply)
    return wire
