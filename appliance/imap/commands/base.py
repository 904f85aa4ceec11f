"""The types every command parser shares: the command base class, the parse context and the
error that says what to answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from appliance.imap.grammar import Cursor


@dataclass(frozen=True)
class ParseContext:
    """Session facts the grammar depends on: `utf8` once UTF8=ACCEPT or IMAP4rev2 is enabled
    (mailbox names are then UTF-8, not modified UTF-7: RFC 6855 3, RFC 9051 5.1)."""

    utf8: bool = False


@dataclass(frozen=True)
class ImapCommand:
    """A parsed command; subclasses add the arguments."""

    tag: str


class CommandError(Exception):
    """A command that cannot run: answer `status` (BAD, or NO with `code`) with `text`,
    tagged with `tag` (untagged when None)."""

    def __init__(self, tag: str | None, text: str, status: str = "BAD",
                 code: str | None = None) -> None:
        super().__init__(text)
        self.tag, self.text, self.status, self.code = tag, text, status, code

    def __repr__(self) -> str:
        return f"CommandError({self.tag!r}, {self.text!r}, {self.status!r}, {self.code!r})"

    def reply(self) -> bytes:
        """The response line, CRLF included (text is ours, never the client's)."""
        code = f"[{self.code}] " if self.code else ""
        return f"{self.tag or '*'} {self.status} {code}{self.text}\r\n".encode()


# A command's argument parser: (tag, cursor after "NAME ", context) -> the command.
Parser: TypeAlias = Callable[[str, Cursor, ParseContext], ImapCommand]
