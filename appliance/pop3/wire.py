"""POP3 wire forms: command lines, arguments, and multi-line responses (RFC 1939 3).

Pure functions. Command grammar (RFC 2449 9, simplified as RFC 1939 3 describes it):

    command  = keyword *(SP param) CRLF    ; at most 255 octets
    keyword  = 3*4VCHAR
    param    = 1*VCHAR                     ; at most 40 octets (PASS excepted)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

CRLF = b"\r\n"
TERMINATOR = b".\r\n"
MAX_NUMBER_DIGITS = 10       # message numbers and line counts; more is not a number we have
_LINE_START_DOT = re.compile(rb"(?m)^\.")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# Control characters never belong in a command line (NUL, ESC, DEL ...); TAB is tolerated.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Command:
    keyword: str        # upper-cased
    argument: str       # everything after the first space, as sent ("" without one)

    @property
    def params(self) -> list[str]:
        return self.argument.split()


class CommandSyntaxError(ValueError):
    """The line is not a command (binary, not UTF-8, control characters)."""


def parse_command(line: bytes) -> Command:
    """Split a command line into its keyword and the rest.

    RFC 1939 3: keywords are case-insensitive, separated from arguments by one space. The
    argument is kept as sent because PASS takes the whole rest as the password (RFC 1939 7:
    "the server may treat the entire argument as the password", spaces included).

    Raises:
        CommandSyntaxError: not UTF-8, or a control character in the line.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandSyntaxError("not UTF-8") from exc
    if _CONTROL.search(text):
        raise CommandSyntaxError("control character")
    keyword, _, argument = text.partition(" ")
    return Command(keyword.upper(), argument)


def parse_number(text: str) -> int | None:
    """A non-negative decimal number as RFC 1939 writes them (digits only), else None."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
        return None
    return int(text)


def status(line: str) -> bytes:
    """One status line, CRLF-terminated."""
    return line.encode("utf-8") + CRLF


def multiline(first: str, lines: list[str]) -> bytes:
    """A status line, then `lines` (which never start with "."), then the terminator."""
    return status(first) + b"".join(status(line) for line in lines) + TERMINATOR


def dot_stuffed(content: bytes) -> bytes:
    """A message as the body of a multi-line response (RFC 1939 3): every line that
    starts with "." gets another in front, the last line is ended, and ".CRLF" follows."""
    return b"".join(dot_stuffed_chunks(content))


def dot_stuffed_chunks(content: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """`dot_stuffed(content)` in pieces of about `size` octets, cut after a line end so
    that each piece is stuffed on its own: a large RETR never exists twice in memory."""
    start = 0
    while start < len(content):
        end = content.rfind(b"\n", start, start + size) + 1
        if end <= start:                       # a line longer than `size`: to its end
            end = content.find(b"\n", start + size) + 1 or len(content)
        yield _LINE_START_DOT.sub(b"..", content[start:end])
        start = end
    if content and not content.endswith(b"\n"):
        yield CRLF
    yield TERMINATOR


def top(content: bytes, body_lines: int) -> bytes:
    """The header, the empty line after it and the first `body_lines` lines of the body
    (RFC 1939 7, TOP). A message without an empty line is all header."""
    if content.startswith((b"\r\n", b"\n")):          # no header fields at all
        cut = content.find(b"\n") + 1
    elif (match := _HEADER_END.search(content)) is None:
        return content
    else:
        cut = match.end()
    if body_lines == 0:
        return content[:cut]
    end = cut
    for _ in range(body_lines):
        newline = content.find(b"\n", end)
        if newline < 0:
            return content
        end = newline + 1
    return content[:end]
