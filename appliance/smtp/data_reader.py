"""The message after DATA, read sans-IO: feed octets in any pieces, take one event out.

RFC 5321 4.1.1.4 (DATA):
    The mail data are terminated by a line containing only a period, that is, the character
    sequence "<CRLF>.<CRLF>", where the first <CRLF> is actually the terminator of the
    previous line (see Section 4.5.2). This is the end of mail data indication. The first
    <CRLF> of this terminating sequence is also the <CRLF> that ends the final line of the
    data (message text) or, if there was no mail data, ends the DATA command itself [...]

RFC 5321 4.5.2 (Transparency):
    o  When a line of mail text is received by the SMTP server, it checks the line. If the
       line is composed of a single period, it is treated as the end of mail indicator. If
       the first character is a period and there are other characters on the line, the
       first character is deleted.

So the end is the first CRLF.CRLF in the stream that begins with the CRLF of the DATA line,
and nothing else: not LF.LF, CR.CR, LF.CRLF or CRLF.LF (SMTP smuggling, CVE-2023-51764).
Those, and every other bare CR or LF, make the message refused like Postfix's
`smtpd_forbid_bare_newline = reject` does, but only at the real end, so the session stays in
step with the client. The body is kept whole and un-stuffed in one pass at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.smtp.body_checks import BodyChecks, BodyError, BodyLimits

TERMINATOR = b"\r\n.\r\n"
_DATA_LINE_END = b"\r\n"   # ends the DATA command: the first CRLF of an empty message's end


class NeedData:
    """Event: the end of data has not come yet; feed more octets."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(frozen=True)
class MessageReceived:
    """Event: the end of data came and the message passed every check."""

    content: bytes   # CRLF lines, transparency dots removed, without the final "."


@dataclass(frozen=True)
class MessageRefused:
    """Event: the end of data came, but the message fails a check and must not be kept."""

    error: BodyError

    @property
    def reply(self) -> str:
        return self.error.reply


Event = NeedData | MessageReceived | MessageRefused


class ReaderMisuseError(RuntimeError):
    """The caller fed octets after the end of data (a bug of ours, not of the client)."""


class DataReader:
    """One message's octets after the 354, up to and including CRLF.CRLF."""

    def __init__(self, limits: BodyLimits) -> None:
        self._checks = BodyChecks(limits, dot_stuffed=True)
        self._held = _DATA_LINE_END   # octets that may start the terminator, not yet checked
        self._unseen = len(_DATA_LINE_END)   # ...of which these few are no message octets
        self._event: Event = NEED_DATA
        self._unused = b""

    @property
    def partial_terminator(self) -> int:
        """How many octets of a possible terminator the stream ends with (0 to 4).

        A driver that reads exactly `len(TERMINATOR) - partial_terminator` octets when this
        is not 0, and otherwise up to the next TERMINATOR in its buffer, never reads past
        the end of data.
        """
        return len(self._held)

    @property
    def unused(self) -> bytes:
        """Octets fed after the end of data: the client's next commands."""
        return self._unused

    def next_event(self) -> Event:
        return self._event

    def feed(self, data: bytes) -> None:
        """Take the next octets the client sent.

        Raises:
            ReaderMisuseError: the end of data was already found.
        """
        if self._event is not NEED_DATA:
            raise ReaderMisuseError("octets fed after the end of data")
        buffer = self._held + data if self._held else data
        end = buffer.find(TERMINATOR)
        if end >= 0:
            self._check(buffer[:end + len(_DATA_LINE_END)])
            self._unused = buffer[end + len(TERMINATOR):]
            self._held = b""
            self._event = self._outcome()
            return
        keep = _terminator_prefix(buffer)
        self._check(buffer[:len(buffer) - keep])
        self._held = buffer[len(buffer) - keep:]

    def _check(self, piece: bytes) -> None:
        skip = min(self._unseen, len(piece))
        self._unseen -= skip
        self._checks.add(piece[skip:])

    def _outcome(self) -> Event:
        error = self._checks.error
        if error is not None:
            return MessageRefused(error)
        return MessageReceived(unstuff(self._checks.content()))


def _terminator_prefix(buffer: bytes) -> int:
    """The length of the longest end of `buffer` that the terminator could continue."""
    for length in range(len(TERMINATOR) - 1, 0, -1):
        if buffer.endswith(TERMINATOR[:length]):
            return length
    return 0


def unstuff(content: bytes) -> bytes:
    """Remove the transparency dot from every line that starts with one (RFC 5321 4.5.2).

    `content` holds whole CRLF lines (no bare CR or LF), so a line starts at the beginning
    and after each CRLF.
    """
    if content.startswith(b"."):
        content = content[1:]
    return content.replace(b"\r\n.", b"\r\n")
