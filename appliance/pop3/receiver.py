"""Splits received bytes into command lines under a length limit (RFC 2449 4).

Like Stalwart's receiver: a line over the limit is reported once, then skipped up to its
end, and the next line is read normally, so an overlong line costs the client one `-ERR`
and never the session's framing. Lines end in CRLF; a bare LF is accepted as well (as every
POP3 server does), and the line is handed out without its ending.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class TooLong:
    """Marker: a line exceeded the limit (it is being skipped)."""


TOO_LONG = TooLong()


@dataclass
class LineReceiver:
    """Buffers bytes; `next_line(limit)` gives the next complete line, TOO_LONG, or None."""

    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def clear(self) -> None:
        """Drop everything buffered (after STLS: RFC 2595 4, no plaintext survives TLS)."""
        self._buffer.clear()
        self._skipping = False

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def next_line(self, limit: int) -> bytes | TooLong | None:
        """The next line (without CRLF) if it fits `limit` octets with its CRLF."""
        end = self._buffer.find(b"\n")
        if self._skipping:
            if end < 0:
                self._buffer.clear()
                return None
            del self._buffer[:end + 1]
            self._skipping = False
            end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) >= limit:     # cannot end within the limit any more
                self._buffer.clear()
                self._skipping = True
                return TOO_LONG
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        if len(line) + 1 > limit:              # the octets sent, with the line end
            return TOO_LONG
        return line[:-1] if line.endswith(b"\r") else line
