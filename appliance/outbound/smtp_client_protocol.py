"""SMTP client protocol core (pure): peer replies from bytes, EHLO capabilities, outcomes.

Nothing here touches a socket. `ReplyParser.feed` takes whatever bytes arrived and returns
the complete replies in them; every limit on what a peer may send is a named constant, and a
peer that breaks the grammar raises `PeerProtocolError` (which the driver treats as a
temporary failure of that connection, STYLE.md practice 7).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from appliance.outbound.types import Outcome

# RFC 5321 4.5.3.1.5 allows 512 octets per reply line; peers send longer ones in the wild
# (long rejection texts), so we accept more but still bound what one peer can make us hold.
MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 200       # lines of one multi-line reply (EHLO lists are ~20)
MAX_REPLY_TEXT = 1000       # characters of a reply kept for results, logs and DSNs

# RFC 5321 4.2:  Reply-line = *( Reply-code "-" [ textstring ] CRLF )
#                             Reply-code [ SP textstring ] CRLF
#                Reply-code = %x32-35 %x30-35 %x30-39
_REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])([ -]?)(.*)", re.DOTALL)
# RFC 3463 2: status-code = class "." subject "." detail
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class PeerProtocolError(Exception):
    """The peer sent something that is not an SMTP reply (or exceeded a limit)."""


@dataclass(frozen=True)
class Reply:
    """One complete reply: its code and the text of each line (without code or separator)."""

    code: int
    lines: tuple[str, ...] = ("",)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code of the first line, e.g. "5.1.1", if any."""
        match = _ENHANCED.match(self.lines[0])
        if match is None or match.group(1) != str(self.code)[0]:
            return None
        return ".".join(match.groups())

    @property
    def text(self) -> str:
        """The reply on one line, e.g. "550 5.1.1 no such user" (for logs, results, DSNs)."""
        words = " ".join(line.strip() for line in self.lines if line.strip())
        text = f"{self.code} {words}".rstrip()
        return text if len(text) <= MAX_REPLY_TEXT else text[:MAX_REPLY_TEXT - 3] + "..."

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def outcome(self) -> Outcome:
        """What this reply, as the final word on a recipient, means for delivery."""
        return outcome_for_code(self.code)


def outcome_for_code(code: int) -> Outcome:
    """2xx delivered, 5xx failed; 4xx and anything unexpected is temporary (practice 7)."""
    if 200 <= code < 300:
        return Outcome.DELIVERED
    if 500 <= code < 600:
        return Outcome.FAILED
    return Outcome.DEFERRED


@dataclass
class ReplyParser:
    """Incremental reply reader: `feed(bytes) -> [Reply, ...]`; keeps partial lines."""

    _buffer: bytearray = field(default_factory=bytearray)
    _code: bytes | None = None
    _lines: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        """Octets received but not yet part of a complete reply (must be 0 before STARTTLS)."""
        return len(self._buffer) + sum(len(line) + 1 for line in self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        """Add received bytes; return every reply they complete, in order.

        Raises:
            PeerProtocolError: a line is not a reply line, mixes codes, or exceeds a limit.
        """
        self._buffer += data
        replies: list[Reply] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_LINE:
                    raise PeerProtocolError(f"reply line longer than {MAX_REPLY_LINE} octets")
                return replies
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[:end + 1]
            reply = self._line(line)
            if reply is not None:
                replies.append(reply)

    def _line(self, line: bytes) -> Reply | None:
        if len(line) + 2 > MAX_REPLY_LINE:
            raise PeerProtocolError(f"reply line longer than {MAX_REPLY_LINE} octets")
        match = _REPLY_LINE.fullmatch(line)
        if match is None or (match.group(3) and not match.group(2)):
            raise PeerProtocolError(f"not an SMTP reply line: {_printable(line)!r}")
        code, separator, text = match.groups()
        if self._code is not None and code != self._code:
            raise PeerProtocolError(f"reply code changed inside a multi-line reply: {code!r}")
        self._code = code
        self._lines.append(_printable(text))
        if len(self._lines) > MAX_REPLY_LINES:
            raise PeerProtocolError(f"multi-line reply longer than {MAX_REPLY_LINES} lines")
        if separator == b"-":
            return None
        reply = Reply(int(code), tuple(self._lines))
        self._code, self._lines = None, []
        return reply


def _printable(raw: bytes) -> str:
    """Reply text as str: UTF-8 (RFC 6531 allows it), control characters replaced.

    Reply text ends up in logs and in DSN headers, so nothing a peer sends may add a line.
    """
    return _CONTROL.sub("?", raw.decode("utf-8", "replace"))


class Phase(enum.Enum):
    """Which RFC 5321 4.5.3.2 timeout governs waiting for a reply (or sending a block)."""

    CONNECT = "connect"
    GREETING = "greeting"      # 4.5.3.2.1  initial 220: 5 minutes
    MAIL = "mail"              # 4.5.3.2.2  MAIL (and EHLO, STARTTLS, RSET, QUIT): 5 minutes
    RCPT = "rcpt"              # 4.5.3.2.3  RCPT: 5 minutes
    DATA_INIT = "data_init"    # 4.5.3.2.4  DATA initiation: 2 minutes
    DATA_BLOCK = "data_block"  # 4.5.3.2.5  each block of the body: 3 minutes
    DATA_END = "data_end"      # 4.5.3.2.6  after the final dot: 10 minutes


@dataclass(frozen=True)
class Capabilities:
    """What the peer's EHLO reply offered (empty after a HELO fallback)."""

    name: str = ""                               # the hostname the peer gave in its reply
    keywords: dict[str, str] = field(default_factory=dict)   # upper-case keyword -> params
    esmtp: bool = True

    def has(self, keyword: str) -> bool:
        return keyword in self.keywords

    @property
    def size_limit(self) -> int | None:
        """RFC 1870: the declared maximum message size, or None when none is declared."""
        value = self.keywords.get("SIZE", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None


def parse_ehlo(reply: Reply) -> Capabilities:
    """Capabilities from a 250 EHLO reply (RFC 5321 4.1.1.1: first line greets, rest list)."""
    name = reply.lines[0].split(" ", 1)[0] if reply.lines[0] else ""
    keywords: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            keywords.setdefault(keyword.upper(), params.strip())
    return Capabilities(name=name, keywords=keywords)


def helo_capabilities(reply: Reply) -> Capabilities:
    """A HELO fallback offers no extensions (RFC 5321 4.1.1.1)."""
    name = reply.lines[0].split(" ", 1)[0] if reply.lines[0] else ""
    return Capabilities(name=name, keywords={}, esmtp=False)
