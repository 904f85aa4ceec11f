"""CHUNKING (RFC 3030), sans-IO: the BDAT command line and the chunks of one transaction.

RFC 3030 2 and 4.1:
    bdat-cmd   ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
    chunk-size ::= 1*DIGIT
    end-marker ::= "LAST"

A chunk is exactly chunk-size octets after the command line: no dot-stuffing, no end
marker, so the bare CR/LF rule of DATA does not apply; size, NUL and line length do. The
octets of a chunk are always read, even when the chunk is refused, or they would be taken
for commands. Once a chunk fails the transaction has failed (RFC 3030 2: the client "MUST
NOT send any additional BDAT segments"): chunks already in the pipeline are read, dropped
and answered with the same refusal, until LAST or RSET ends the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.smtp.body_checks import BodyChecks, BodyLimits


@dataclass(frozen=True)
class BdatCommand:
    """One parsed BDAT command line."""

    size: int
    last: bool


def parse_bdat(arg: str | None) -> BdatCommand | None:
    """The BDAT arguments (after the verb), or None if they break the grammar above."""
    words = (arg or "").split(" ")
    if not 1 <= len(words) <= 2 or not (words[0].isascii() and words[0].isdigit()):
        return None
    if len(words) == 2 and words[1].upper() != "LAST":
        return None
    return BdatCommand(int(words[0]), len(words) == 2)


class ChunkedMessage:
    """The chunks of one BDAT transaction so far, and the reply that failed it, if any."""

    def __init__(self, limits: BodyLimits) -> None:
        self._checks = BodyChecks(limits, dot_stuffed=False)
        self.failure: str | None = None

    @property
    def size(self) -> int:
        """Octets received in all chunks so far."""
        return self._checks.size

    def add(self, piece: bytes) -> None:
        """Take octets of the current chunk (dropped once the transaction failed)."""
        if self.failure is None:
            self._checks.add(piece)

    def fail(self, reply: str) -> None:
        """Fail the transaction with `reply`, unless it already failed."""
        if self.failure is None:
            self.failure = reply

    def end_chunk(self, last: bool) -> str | None:
        """The current chunk is complete: the reply that failed the transaction, or None."""
        if last:
            self._checks.finish()
        error = self._checks.error
        if error is not None:
            self.fail(error.reply)
        return self.failure

    def content(self) -> bytes:
        """The message: every chunk's octets in order, as sent."""
        return self._checks.content()
