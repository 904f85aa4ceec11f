"""The checks every message body passes as its octets arrive, for DATA and for BDAT alike.

Pure and incremental: `add` takes the body in pieces of any size and gives the same verdict
however the octets were split, so the limits hold whatever the network does. Once a check
fails, the octets kept so far are dropped and later ones are not kept: a refused message
costs no memory, however much more of it the client still sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.smtp import replies

CR, LF, NUL = b"\r", b"\n", b"\x00"


class BodyError(enum.Enum):
    """Why a body is refused, most telling first (the order picks one when several apply)."""

    BARE_LINE_END = "bare_line_end"   # smuggling (CVE-2023-51764): a CR or LF not in a CRLF
    NUL = "nul"                       # RFC 5321 4.1.1.4: NUL is no text character
    LINE_TOO_LONG = "line_too_long"   # RFC 5321 4.5.3.1.6
    TOO_BIG = "too_big"               # RFC 1870: the size we advertise

    @property
    def reply(self) -> str:
        return _REPLIES[self]


_REPLIES = {
    BodyError.BARE_LINE_END: replies.BARE_LINE_END,
    BodyError.NUL: replies.NUL_IN_MESSAGE,
    BodyError.LINE_TOO_LONG: replies.LINE_TOO_LONG,
    BodyError.TOO_BIG: replies.MESSAGE_TOO_BIG,
}


@dataclass(frozen=True)
class BodyLimits:
    """The named limits on one message body (settings `limits.max_message_size` and
    `limits.max_line_length`)."""

    max_size: int   # octets of the body as sent, line ends included
    max_line: int   # octets of one line including its CRLF


class BodyChecks:
    """Size, NUL and line-length checks, and for DATA the bare CR/LF check, over a stream.

    Args:
        limits: the limits to enforce.
        dot_stuffed: DATA: lines end in CRLF only (a bare CR or LF is refused) and a line
            that starts with the transparency dot may be one octet longer (RFC 5321 4.5.2).
            BDAT octets are taken as they come (RFC 3030 has neither).
    """

    def __init__(self, limits: BodyLimits, *, dot_stuffed: bool) -> None:
        self._limits = limits
        self._dot_stuffed = dot_stuffed
        self._found: set[BodyError] = set()
        self._parts: list[bytes] = []
        self.size = 0
        self._last = LF          # the octet before the next one: a line starts after LF
        self._line = 0           # octets of the unfinished line so far
        self._line_first = b""   # its first octet

    @property
    def error(self) -> BodyError | None:
        """The most telling check that failed so far, or None."""
        return min(self._found, key=list(BodyError).index, default=None)

    def add(self, piece: bytes) -> None:
        """Check the next octets of the body and keep them unless a check failed."""
        if not piece:
            return
        self.size += len(piece)
        if self.size > self._limits.max_size:
            self._fail(BodyError.TOO_BIG)
        if NUL in piece:
            self._fail(BodyError.NUL)
        if self._dot_stuffed:
            self._check_line_ends(piece)
        self._check_line_lengths(piece)
        self._last = piece[-1:]
        if not self._found:
            self._parts.append(piece)

    def finish(self) -> None:
        """The body ended: check its last line even if no line end finished it (BDAT).

        Such a line is measured as if its LF followed, like every other line.
        """
        if self._line:
            self._end_line(self._line + 1, self._line_first)
            self._line, self._line_first = 0, b""

    def content(self) -> bytes:
        """Every octet added, in order (empty once a check failed)."""
        return b"".join(self._parts)

    def _fail(self, error: BodyError) -> None:
        self._found.add(error)
        self._parts.clear()

    def _check_line_ends(self, piece: bytes) -> None:
        """RFC 5321 2.3.8: CR and LF only ever as the pair CRLF."""
        pairs = piece.count(b"\r\n")
        joined = self._last == CR and piece[:1] == LF    # a CRLF split between two pieces
        bare_lf = piece.count(LF) - pairs - joined
        bare_cr = piece.count(CR) - pairs - (piece[-1:] == CR)   # a last CR waits for LF
        if bare_lf or bare_cr or (self._last == CR and not joined):
            self._fail(BodyError.BARE_LINE_END)

    def _check_line_lengths(self, piece: bytes) -> None:
        if not self._lines_fit(piece):
            self._check_each_line(piece)
        last = piece.rfind(LF)
        if last < 0:
            self._line_first = self._line_first or piece[:1]
            self._line += len(piece)
        else:
            self._line, self._line_first = len(piece) - last - 1, piece[last + 1:last + 2]

    def _lines_fit(self, piece: bytes) -> bool:
        """Quick: does no line end in or run through `piece` longer than max_line octets?

        Jumps from a line end to the last line end at most max_line octets further, a few
        steps per kilobyte; a line that may be too long is left to `_check_each_line`.
        """
        limit = self._limits.max_line
        if self._line >= limit:           # the unfinished line is already too long
            return False
        end = -1 - self._line             # the line end before the current line
        while end + limit < len(piece):
            found = piece.rfind(LF, max(end + 1, 0), end + limit + 1)
            if found < 0:
                return False
            end = found
        return True

    def _check_each_line(self, piece: bytes) -> None:
        """Exact: every line finished in `piece`, with the dot allowance."""
        *finished, _ = piece.split(LF)
        if finished:
            head = finished[0]
            self._end_line(self._line + len(head) + 1, self._line_first or head[:1])
        for line in finished[1:]:
            self._end_line(len(line) + 1, line[:1])

    def _end_line(self, length: int, first: bytes) -> None:
        allowed = self._limits.max_line + (self._dot_stuffed and first == b".")
        if length > allowed:
            self._fail(BodyError.LINE_TOO_LONG)
