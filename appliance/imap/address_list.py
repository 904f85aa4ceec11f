"""RFC 5322 3.4 address lists as IMAP ENVELOPE shows them (RFC 9051 7.5.2 "address").

Real mail has broken address headers; where the RFC gives no answer we do what Dovecot
does, checked address by address against it (tests/integration/test_imap_mime_oracle.py):

- a missing mailbox or host is `MISSING_MAILBOX` / `MISSING_DOMAIN`; an unclosed `<...`
  gets host `SYNTAX_ERROR`; an empty route `<@>` is `INVALID_ROUTE`;
- the list stops at the first address not followed by a comma; an empty entry between
  commas is an address with both placeholders;
- `word word` without `@` is a display name, a lone atom a mailbox without host, a lone
  quoted string a name; a comment after an addr-spec is its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"
SYNTAX_ERROR = b"SYNTAX_ERROR"
INVALID_ROUTE = b"INVALID_ROUTE"
MAX_ADDRESSES = 10000

# RFC 5322 3.2.3 atext, with "." allowed inside (obs-phrase, dot-atom) and 8-bit let through
_ATOM = re.compile(rb'[^()<>\[\]:;@\\,"\x00-\x20]+')

_Token = tuple[str, bytes]   # kind ("atom", "quoted", "comment", "literal", "special",
                             # "broken": an unclosed comment), text


@dataclass(frozen=True)
class Address:
    """One entry of an address list. A group start has only `mailbox` (the group name);
    a group end has nothing (RFC 9051 7.5.2)."""

    name: bytes | None
    route: bytes | None
    mailbox: bytes | None
    host: bytes | None


def _tokens(data: bytes) -> list[_Token]:
    out: list[_Token] = []
    pos, size = 0, len(data)
    while pos < size:
        byte = data[pos]
        if byte in b" \t\r\n":
            pos += 1
        elif byte == 0x28:    # "("
            pos = _comment(data, pos, out)
        elif byte == 0x22:    # DQUOTE
            pos = _quoted(data, pos, out)
        elif byte == 0x5B:    # "[" domain literal
            end = data.find(b"]", pos)
            end = size if end < 0 else end + 1
            out.append(("literal", data[pos:end]))
            pos = end
        elif (atom := _ATOM.match(data, pos)) is not None:
            out.append(("atom", atom.group()))
            pos = atom.end()
        else:
            out.append(("special", data[pos:pos + 1]))
            pos += 1
    return out


def _comment(data: bytes, pos: int, out: list[_Token]) -> int:
    """A (nested) comment; its text without the outer parentheses."""
    depth, text = 0, bytearray()
    while pos < len(data):
        byte = data[pos]
        pos += 1
        if byte == 0x5C and pos < len(data):
            text.append(data[pos])
            pos += 1
            continue
        if byte == 0x28:
            depth += 1
            if depth == 1:
                continue
        elif byte == 0x29:
            depth -= 1
            if depth == 0:
                out.append(("comment", bytes(text)))
                return pos
        text.append(byte)
    out.append(("broken", bytes(text)))
    return pos


def _quoted(data: bytes, pos: int, out: list[_Token]) -> int:
    text = bytearray()
    pos += 1
    while pos < len(data):
        byte = data[pos]
        pos += 1
        if byte == 0x22:
            break
        if byte == 0x5C and pos < len(data):
            byte = data[pos]
            pos += 1
        elif byte in (0x0D, 0x0A):
            continue
        text.append(byte)
    out.append(("quoted", bytes(text)))
    return pos


def _domain_ok(domain: bytes) -> bool:
    if domain.startswith(b"["):
        return domain.endswith(b"]")
    return not (domain.startswith(b".") or domain.endswith(b".") or b".." in domain)


def _local_ok(local: bytes, quoted: bool) -> bool:
    return quoted or not (local.endswith(b".") or b".." in local)


class _Parser:
    """Recursive descent over the tokens of one address-list header."""

    def __init__(self, data: bytes) -> None:
        self.tokens = _tokens(data)
        self.pos = 0
        self.out: list[Address] = []
        self.comment: bytes | None = None

    def peek(self) -> _Token | None:
        """The next token, skipping comments (the last one is kept as a possible name)."""
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] == "comment":
            self.comment = self.tokens[self.pos][1]
            self.pos += 1
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at(self, char: bytes) -> bool:
        return self.peek() == ("special", char)

    def push(self, name: bytes | None, route: bytes | None, mailbox: bytes | None,
             host: bytes | None) -> None:
        self.out.append(Address(name or None, route, MISSING_MAILBOX if mailbox is None
                                else mailbox, host or MISSING_DOMAIN))

    def parse(self) -> list[Address]:
        """address-list (RFC 5322 3.4)."""
        expecting = True
        while self.peek() is not None and len(self.out) < MAX_ADDRESSES:
            if self.at(b","):
                if expecting:
                    self.push(None, None, None, None)   # an empty entry
                self.pos += 1
                expecting = True
                continue
            self.address()
            expecting = False
            if self.peek() is not None and not self.at(b","):
                break
        return self.out

    def group(self, name: bytes) -> None:
        """group = display-name ":" [group-list] ";" (RFC 5322 3.4)."""
        self.out.append(Address(None, None, name, None))
        expecting = False
        while self.peek() is not None and not self.at(b";"):
            if self.at(b","):
                if expecting:
                    self.push(None, None, None, None)
                self.pos += 1
                expecting = True
                continue
            self.address()
            expecting = False
            if not (self.at(b",") or self.at(b";")):
                break
        if expecting:
            self.push(None, None, None, None)
        if self.at(b";"):
            self.pos += 1
        self.out.append(Address(None, None, None, None))

    def phrase(self) -> list[bytes]:
        """RFC 5322 3.2.5 phrase (with obs-phrase dots), not starting with a dot."""
        words: list[bytes] = []
        while (token := self.peek()) is not None and token[0] in ("atom", "quoted"):
            if not words and token[0] == "atom" and token[1].startswith(b"."):
                break
            words.append(token[1])
            self.pos += 1
        return words

    def address(self) -> None:
        start = self.pos
        words = self.phrase()
        if self.at(b":"):
            self.pos += 1
            self.group(b" ".join(words))
        elif self.at(b"<"):
            self.pos += 1
            self.angle(b" ".join(words))
        else:
            self.pos = start
            self.addr_spec()

    def local_part(self) -> tuple[bytes, bool]:
        """A dot-atom or a quoted string (unquoted), and whether it was quoted. Like
        Dovecot, white space may come before a dot but not after it."""
        token = self.peek()
        if token is None or token[0] not in ("atom", "quoted"):
            return b"", False
        self.pos += 1
        if token[0] == "quoted":
            return token[1], True
        out = token[1]
        while (token := self.peek()) is not None and token[0] == "atom" and (
                token[1].startswith(b".")):
            out += token[1]
            self.pos += 1
        return out, False

    def domain(self) -> bytes:
        """A domain (white space allowed around its dots, RFC 5322 4.4 obs-domain) or a
        domain literal; b"" when missing or malformed."""
        token = self.peek()
        if token is None or token[0] not in ("atom", "literal"):
            return b""
        self.pos += 1
        out = token[1]
        while token[0] == "atom" and (nxt := self.peek()) is not None and nxt[0] == "atom" and (
                out.endswith(b".") or nxt[1].startswith(b".")):
            out += nxt[1]
            self.pos += 1
        return out if _domain_ok(out) else b""

    def route(self) -> bytes | None:
        """obs-route (RFC 5322 4.4): `@a,@b:` before the addr-spec."""
        if not self.at(b"@"):
            return None
        parts: list[bytes] = []
        while self.at(b"@") or self.at(b","):
            if self.at(b","):
                self.pos += 1
                continue
            self.pos += 1
            domain = self.domain()
            if not domain:
                return INVALID_ROUTE
            parts.append(b"@" + domain)
        if self.at(b":"):
            self.pos += 1
        return b",".join(parts)

    def angle(self, name: bytes) -> None:
        """angle-addr = "<" [obs-route] addr-spec ">"."""
        route = self.route()
        local, quoted = self.local_part()
        host = b""
        if self.at(b"@") and _local_ok(local, quoted):
            self.pos += 1
            host = self.domain()
        if self.at(b">"):
            self.pos += 1
        else:
            host = SYNTAX_ERROR
        self.push(name, route, local if local or quoted else None, host)

    def addr_spec(self) -> None:
        """A bare addr-spec, or what Dovecot makes of words without `@`."""
        self.comment = None
        local, quoted = self.local_part()
        if self.at(b"@"):
            if not _local_ok(local, quoted):     # "a.b.@c": the host is given up
                self.push(None, None, local, None)
                return
            self.pos += 1
            host = self.domain()
            self.peek()                           # a trailing comment names it
            self.push(self.comment, None, local if local or quoted else None, host)
            return
        rest = self.phrase()
        token = self.peek()
        if token is not None and token[0] == "broken":
            self.pos += 1
            self.push(None, None, None, None)
        elif rest or quoted:
            self.push(b" ".join([local, *rest]), None, None, None)
        else:
            self.push(self.comment, None, local or None, None)


def parse_addresses(value: bytes) -> list[Address]:
    """The addresses of one address-list header value."""
    return _Parser(value).parse()
