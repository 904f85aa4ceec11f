"""The incremental IMAP command receiver (sans-IO): octets in, whole commands out.

It owns the framing of RFC 9051 section 2.2 and 4.3: a command is lines of text joined by
literals (`{n}` synchronising, `{n+}` non-synchronising, RFC 7888; `~{n}` literal8, RFC 3516).
It knows tags and command names, never arguments: `grammar` and `commands` parse those. Every
limit on untrusted input is a named field of `ReceiverLimits` (Stalwart's receiver.rs);
exceeding one yields an `ReceiverError` with the reply to send, and the receiver goes back in
step with the client at the next line, so the session goes on.

Use it like h11: `feed(data)`, then call `next_event()` until it returns `NEED_DATA`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from appliance.imap.literals import LiteralData

__all__ = ["NEED_DATA", "Command", "ContinuationRequest", "Event", "LiteralData", "NeedData",
           "RawLine", "Receiver", "ReceiverError", "ReceiverLimits"]

SinkFactory = Callable[[int], IO[bytes]]

# literal = "{" number64 ["+"] "}" CRLF *CHAR8    (RFC 9051 9, RFC 7888 8)
# literal8 = "~{" number64 "}" CRLF *OCTET        (RFC 3516 4.2)
_LITERAL_HEADER = re.compile(rb"\{([0-9]+)(\+?)\}")
_NUMBER64_MAX = 2**63 - 1
# tag = 1*<any ASTRING-CHAR except "+">   (RFC 9051 9): printable ASCII minus atom-specials,
# with "]" (resp-specials) allowed.
_TAG = re.compile(rb"[\x21\x23\x24\x26-\x27\x2c-\x5b\x5d-\x7a\x7c\x7e]+\Z")
_ATOM = re.compile(rb"[\x21\x23\x24\x26-\x27\x2b-\x5b\x5e-\x7a\x7c\x7e]+\Z")
_HEADER_TAIL = 32      # octets of a skipped line kept to see a literal header at its end


def _default_sink(limits: ReceiverLimits) -> SinkFactory:
    def sink(size: int) -> IO[bytes]:
        return tempfile.SpooledTemporaryFile(max_size=limits.spool_threshold)
    return sink


@dataclass(frozen=True)
class ReceiverLimits:
    """Limits on one client's commands (STYLE.md practice 4)."""

    max_line: int = 64 * 1024            # non-literal text of one command, CRLFs excluded
    max_tag: int = 64
    max_literal: int = 50 * 1024 * 1024  # the message size limit (APPEND)
    max_literals: int = 64               # literals in one command (MULTIAPPEND, LOGIN, ...)
    max_command: int = 100 * 1024 * 1024  # text plus literals of one command
    # LITERAL- (RFC 7888 5): non-synchronising literals above this are refused with BAD;
    # None means LITERAL+ (any size up to max_literal).
    max_non_sync_literal: int | None = 4096
    spool_threshold: int = 64 * 1024     # literals above this go to the sink, not memory


class NeedData:
    """Event: feed more octets."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(frozen=True)
class Command:
    """Event: one whole command. `args` is the text after the name, literal headers kept in
    place (`{5}`, `~{9}`) and each literal's data in `literals`, in order."""

    tag: str
    name: str                       # upper case; "UID" for UID commands (the rest is in args)
    args: bytes
    literals: tuple[LiteralData, ...] = ()


@dataclass(frozen=True)
class ContinuationRequest:
    """Event: the client waits for `+ Ready` before it sends a synchronising literal."""

    size: int


@dataclass(frozen=True)
class RawLine:
    """Event: the line asked for with `expect_line` (IDLE's DONE, AUTHENTICATE responses)."""

    line: bytes


@dataclass(frozen=True)
class ReceiverError:
    """Event: answer `status` (BAD or NO) with `code` and `text`; tagged when `tag` is set.
    `discard` octets of literal data are being skipped by the receiver for this error.
    `fatal`: the receiver cannot get back in step; say BYE and close the connection."""

    tag: str | None
    status: str
    text: str
    code: str | None = None
    discard: int = 0
    fatal: bool = False


Event = Command | ContinuationRequest | RawLine | ReceiverError | NeedData


@dataclass
class _Pending:
    """The command being received."""

    text: bytearray = field(default_factory=bytearray)
    literals: list[LiteralData] = field(default_factory=list)
    total: int = 0
    tag: str | None = None


class Receiver:
    """Frames a client's octets into commands (see the module docstring)."""

    def __init__(self, limits: ReceiverLimits | None = None,
                 sink: SinkFactory | None = None) -> None:
        self.limits = limits or ReceiverLimits()
        self._sink = sink               # None: `_default_sink` of the limits, made when needed
        self._buf = bytearray()
        self._cmd = _Pending()
        self._literal: _LiteralIn | None = None
        self._skip_octets = 0           # literal data being discarded
        self._skip_line = False         # discarding up to the next LF
        self._skip_tail = b""
        self._raw_line = False

    def feed(self, data: bytes) -> None:
        """Add octets received from the client."""
        self._buf += data

    def buffered_commands(self, limit: int) -> bytes:
        """Up to `limit` octets received and not yet framed, when nothing of a command has
        been read yet (between commands): for a caller that answers whole command lines
        itself (the IMAP driver's fast lane), which then `consume`s what it answered.
        Empty otherwise."""
        if (self._cmd.text or self._cmd.literals or self._literal is not None
                or self._skip_octets or self._skip_line or self._raw_line):
            return b""
        return bytes(self._buf[:limit])

    def consume(self, size: int) -> None:
        """Drop the first `size` buffered octets (whole lines `buffered_commands` gave)."""
        del self._buf[:size]

    def expect_line(self) -> None:
        """Return the next line as one `RawLine` instead of parsing it as a command (IDLE's
        DONE, AUTHENTICATE's responses). One-shot: the next `RawLine`, or the untagged
        `ReceiverError` for a line too long, ends it."""
        self._raw_line = True

    @property
    def buffered(self) -> int:
        """Octets held and not yet framed (literal data already went to its literal)."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """True between commands with nothing buffered (a clean place to stop reading)."""
        return (not self._buf and not self._cmd.text and not self._cmd.literals
                and self._literal is None and not self._skip_octets and not self._skip_line)

    def next_event(self) -> Event:
        """The next event, or `NEED_DATA`."""
        while True:
            if self._literal is not None:
                if not self._read_literal():
                    return NEED_DATA
            elif self._skip_octets:
                if not self._discard_octets():
                    return NEED_DATA
            elif self._skip_line:
                if not self._discard_line():
                    return NEED_DATA
            else:
                return self._read_line()

    # -- states ---------------------------------------------------------------------------

    def _read_literal(self) -> bool:
        literal = self._literal
        assert literal is not None
        take = min(literal.remaining, len(self._buf))
        if take:
            literal.write(bytes(self._buf[:take]))
            del self._buf[:take]
        if literal.remaining:
            return False
        self._cmd.literals.append(literal.finish())
        self._literal = None
        return True

    def _discard_octets(self) -> bool:
        take = min(self._skip_octets, len(self._buf))
        del self._buf[:take]
        self._skip_octets -= take
        return not self._skip_octets

    def _discard_line(self) -> bool:
        end = self._buf.find(b"\n")
        if end < 0:
            self._skip_tail = (self._skip_tail + bytes(self._buf))[-_HEADER_TAIL:]
            self._buf.clear()
            return False
        line = (self._skip_tail + bytes(self._buf[:end])).rstrip(b"\r")
        del self._buf[:end + 1]
        self._skip_line, self._skip_tail = False, b""
        header = _literal_header(line)
        # A non-synchronising literal at the end of a skipped line still arrives; skip it
        # and the rest of its command too. A synchronising one never comes: we send no "+".
        if header and not header.sync:
            self._skip_octets = header.size
            self._skip_line = True
        return True

    def _read_line(self) -> Event:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._cmd.text) + len(self._buf) > self.limits.max_line + 1:
                return self._fail_overlong()
            return NEED_DATA
        line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._raw_line:
            self._raw_line = False
            if len(line) > self.limits.max_line:
                return self._error(None, "BAD", "Line too long")
            return RawLine(line)
        return self._add_line(line)

    # -- commands -------------------------------------------------------------------------

    def _add_line(self, line: bytes) -> Event:
        cmd = self._cmd
        first = not cmd.text and not cmd.literals
        cmd.text += line
        cmd.total += len(line)
        if first:
            tag = line.split(b" ", 1)[0]
            if len(tag) > self.limits.max_tag or not _TAG.match(tag):
                return self._reject(line, None, "BAD", "Invalid or missing tag")
            cmd.tag = tag.decode("ascii")
        if len(cmd.text) > self.limits.max_line:
            return self._reject(line, cmd.tag, "BAD", "Command line too long")
        if b"\x00" in line:
            return self._reject(line, cmd.tag, "BAD", "NUL is not allowed in commands")
        header = _literal_header(line)
        if header is None:
            return self._complete()
        return self._start_literal(line, header)

    def _start_literal(self, line: bytes, header: _Header) -> Event:
        cmd, limits = self._cmd, self.limits
        size, sync = header.size, header.sync
        too_big = (size > limits.max_literal or cmd.total + size > limits.max_command
                   or (not sync and limits.max_non_sync_literal is not None
                       and size > limits.max_non_sync_literal))
        if too_big:
            # RFC 7888 4/5 and RFC 9051 7.1 (TOOBIG): a synchronising literal is refused
            # before the client sends it; a non-synchronising one comes anyway and is skipped.
            return self._reject(line, cmd.tag, "NO" if sync else "BAD",
                                "Literal too big", code="TOOBIG")
        if len(cmd.literals) >= limits.max_literals:
            return self._reject(line, cmd.tag, "BAD", "Too many literals in one command")
        cmd.total += size
        factory = None
        if size > limits.spool_threshold:
            factory = self._sink or _default_sink(limits)
        self._literal = _LiteralIn(size, header.binary, factory)
        return ContinuationRequest(size) if sync else self.next_event()

    def _complete(self) -> Event:
        cmd, self._cmd = self._cmd, _Pending()
        assert cmd.tag is not None
        rest = bytes(cmd.text)[len(cmd.tag) + 1:]
        name, _, args = rest.partition(b" ")
        if not _ATOM.match(name):
            for literal in cmd.literals:
                literal.close()
            return self._error(cmd.tag, "BAD", "Missing or invalid command name")
        return Command(cmd.tag, name.decode("ascii").upper(), args, tuple(cmd.literals))

    # -- errors ---------------------------------------------------------------------------

    def _reject(self, line: bytes, tag: str | None, status: str, text: str,
                code: str | None = None) -> ReceiverError:
        """Refuse the command whose (complete) line `line` was just read."""
        self._drop_command()
        discard = 0
        header = _literal_header(line)
        if header and not header.sync:
            discard = self._skip_octets = header.size
            self._skip_line = True
        # Past number64 there is no way back in step (and no honest client): the session
        # says BYE. Treating the octets as commands would let them inject commands.
        fatal = discard > _NUMBER64_MAX
        return ReceiverError(tag, status, text, code, discard, fatal)

    def _fail_overlong(self) -> ReceiverError:
        tag = self._cmd.tag
        if self._raw_line:
            self._raw_line = False
        elif tag is None:
            first = bytes(self._buf[:self.limits.max_tag + 1]).split(b" ", 1)
            if len(first) == 2 and _TAG.match(first[0]):
                tag = first[0].decode("ascii")
        self._skip_tail = bytes(self._buf[-_HEADER_TAIL:])
        self._buf.clear()
        self._skip_line = True
        self._drop_command()
        return self._error(tag, "BAD", "Command line too long")

    def _drop_command(self) -> None:
        for literal in self._cmd.literals:
            literal.close()
        self._cmd = _Pending()

    @staticmethod
    def _error(tag: str | None, status: str, text: str, code: str | None = None,
               discard: int = 0) -> ReceiverError:
        return ReceiverError(tag, status, text, code, discard)


@dataclass(frozen=True)
class _Header:
    size: int
    sync: bool
    binary: bool


def _literal_header(line: bytes) -> _Header | None:
    """The literal header that ends `line`, if any: "{n}", "{n+}" or "~{n}"."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    found = _LITERAL_HEADER.fullmatch(line, start) if start >= 0 else None
    if found is None:
        return None
    digits = found.group(1)
    # Any number of digits is read: a size too long to parse must still be seen as a
    # literal, or its octets would be taken for commands (command injection).
    size = int(digits) if len(digits) <= 20 else _NUMBER64_MAX * 2
    return _Header(size, not found.group(2), line[start - 1:start] == b"~")


class _LiteralIn:
    """A literal being received: small ones in memory, large ones into a sink file."""

    def __init__(self, size: int, binary: bool, factory: SinkFactory | None) -> None:
        self.size, self.binary, self.remaining = size, binary, size
        self._chunks: list[bytes] = []
        self._file = factory(size) if factory is not None else None

    def write(self, data: bytes) -> None:
        self.remaining -= len(data)
        if self._file is not None:
            self._file.write(data)
        else:
            self._chunks.append(data)

    def finish(self) -> LiteralData:
        if self._file is not None:
            self._file.seek(0)
            return LiteralData(self.size, self.binary, file=self._file)
        return LiteralData(self.size, self.binary, data=b"".join(self._chunks))
