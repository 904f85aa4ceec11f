"""FETCH ENVELOPE (RFC 9051 7.5.2 / RFC 3501 7.4.2): the envelope of a header, with the
address lists parsed as RFC 5322 3.4 says and groups shown as RFC 9051 describes.

Values are `wire.Value`s; render them with `mime_render.render` (address lists are
`Adjacent` runs). Header values are unfolded and
RFC 2047 encoded-words are left as they are (IMAP clients decode them; Dovecot does the
same). Like Dovecot, the last of repeated envelope fields wins, the subject and display
names have runs of white space collapsed, and an address without a domain gets the
placeholder host `MISSING_DOMAIN` (RFC 9051 leaves it to the server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.imap import wire
from appliance.imap.mime import Field, parse_header_fields
from appliance.imap.mime_render import Adjacent

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"
MAX_ADDRESSES = 10000
_SPECIALS = b'()<>[]:;@\\,"'
_ATOM_STOP = frozenset(_SPECIALS) | frozenset(b" \t\r\n") | frozenset(range(0x20))


@dataclass(frozen=True)
class Address:
    """One entry of an address list as IMAP writes it (RFC 9051 7.5.2 "address").
    A group start has only `mailbox` (the group name); a group end has nothing."""

    name: bytes | None
    route: bytes | None
    mailbox: bytes | None
    host: bytes | None

    def value(self) -> wire.Value:
        return [None if self.name is None else _collapse(self.name), self.route,
                self.mailbox, self.host]


def _collapse(text: bytes) -> bytes:
    """Dovecot's "string for humans" (subject, display names): line breaks dropped, runs of
    white space made one space, leading and trailing white space removed, NUL as 0x80."""
    out = text.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"\x80")
    return b" ".join(word for word in out.replace(b"\t", b" ").split(b" ") if word)


# -- address lists (RFC 5322 3.4) --------------------------------------------------------

_Token = tuple[str, bytes]   # ("atom" | "quoted" | "comment" | "literal" | "special", text)


def _tokens(data: bytes) -> list[_Token]:
    out: list[_Token] = []
    pos, size = 0, len(data)
    while pos < size:
        byte = data[pos]
        if byte in b" \t\r\n":
            pos += 1
        elif byte == 0x28:
            pos = _comment(data, pos, out)
        elif byte == 0x22:
            pos = _quoted(data, pos, out)
        elif byte == 0x5B:
            end = data.find(b"]", pos)
            end = size if end < 0 else end + 1
            out.append(("literal", data[pos:end]))
            pos = end
        elif byte in _ATOM_STOP:
            out.append(("special", data[pos:pos + 1]))
            pos += 1
        else:
            start = pos
            while pos < size and data[pos] not in _ATOM_STOP:
                pos += 1
            out.append(("atom", data[start:pos]))
    return out


def _comment(data: bytes, pos: int, out: list[_Token]) -> int:
    depth, start, text = 0, pos, bytearray()
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
                break
        text.append(byte)
    del start
    out.append(("comment", bytes(text)))
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


class _AddressParser:
    """Recursive-descent over the tokens of one address-list header."""

    def __init__(self, data: bytes) -> None:
        self.tokens = _tokens(data)
        self.pos = 0
        self.out: list[Address] = []
        self.comment: bytes | None = None

    def peek(self) -> _Token | None:
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] == "comment":
            self.comment = self.tokens[self.pos][1]
            self.pos += 1
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def is_special(self, char: bytes) -> bool:
        token = self.peek()
        return token is not None and token == ("special", char)

    def parse(self) -> list[Address]:
        while self.peek() is not None and len(self.out) < MAX_ADDRESSES:
            if self.is_special(b","):
                self.pos += 1
                continue
            self.address()
            self.skip_to(b",")
        return self.out

    def skip_to(self, *stops: bytes) -> None:
        """Skip what cannot be parsed up to the next separator (or the end)."""
        while True:
            token = self.peek()
            if token is None or (token[0] == "special" and token[1] in stops):
                return
            self.pos += 1

    def phrase(self) -> list[bytes]:
        """RFC 5322 3.2.5 phrase (obs-phrase: dots allowed): its words."""
        words: list[bytes] = []
        while (token := self.peek()) is not None and token[0] in ("atom", "quoted"):
            words.append(token[1])
            self.pos += 1
        return words

    def address(self) -> None:
        start = self.pos
        words = self.phrase()
        if self.is_special(b":"):
            self.pos += 1
            self.group(b" ".join(words))
        elif self.is_special(b"<"):
            self.pos += 1
            self.angle(b" ".join(words) if words else None)
        else:
            self.pos = start
            self.addr_spec()

    def group(self, name: bytes) -> None:
        self.out.append(Address(None, None, name, None))
        while (token := self.peek()) is not None and token != ("special", b";"):
            if token == ("special", b","):
                self.pos += 1
                continue
            self.address()
            self.skip_to(b",", b";")
        if self.is_special(b";"):
            self.pos += 1
        self.out.append(Address(None, None, None, None))

    def angle(self, name: bytes | None) -> None:
        route = self.route()
        self.comment = None
        mailbox = self.local_part()
        host = None
        if self.is_special(b"@"):
            self.pos += 1
            host = self.domain()
        self.skip_to(b">", b",")
        if self.is_special(b">"):
            self.pos += 1
        self.push(name, route, mailbox, host)

    def route(self) -> bytes | None:
        """obs-route (RFC 5322 4.4): `@a,@b:` before the addr-spec."""
        if not self.is_special(b"@"):
            return None
        parts: list[bytes] = []
        while self.is_special(b"@") or self.is_special(b","):
            if self.is_special(b","):
                self.pos += 1
                continue
            self.pos += 1
            parts.append(b"@" + self.domain())
        if self.is_special(b":"):
            self.pos += 1
        return b",".join(parts)

    def local_part(self) -> bytes:
        """dot-atom / quoted-string / obs-local-part, unquoted."""
        out = bytearray()
        while (token := self.peek()) is not None and token[0] in ("atom", "quoted"):
            if out and not out.endswith(b".") and not token[1].startswith(b"."):
                break
            out += token[1]
            self.pos += 1
        return bytes(out)

    def domain(self) -> bytes:
        out = bytearray()
        while (token := self.peek()) is not None and token[0] in ("atom", "literal"):
            if out and not out.endswith(b".") and not token[1].startswith(b"."):
                break
            out += token[1]
            self.pos += 1
        return bytes(out)

    def addr_spec(self) -> None:
        """A bare addr-spec; like Dovecot, `word word...` without `@` is a display name
        (a lone atom is a mailbox without domain, a lone quoted string a name)."""
        self.comment = None
        first = self.peek()
        mailbox: bytes | None = self.local_part()
        host = None
        name = None
        if self.is_special(b"@"):
            self.pos += 1
            host = self.domain()
        else:
            rest = self.phrase()
            if rest:
                name, mailbox = b" ".join([mailbox or b"", *rest]), None
            elif first is not None and first[0] == "quoted":
                name, mailbox = mailbox, None
        self.peek()
        if name is None and self.comment:
            name = self.comment
        self.push(name, None, mailbox, host)

    def push(self, name: bytes | None, route: bytes | None, mailbox: bytes | None,
             host: bytes | None) -> None:
        self.out.append(Address(name, route, mailbox or MISSING_MAILBOX,
                                host or MISSING_DOMAIN))


def _join(words: list[bytes]) -> bytes:
    return b" ".join(words)


def parse_addresses(value: bytes) -> list[Address]:
    """An RFC 5322 address-list as IMAP address structures (groups as RFC 9051 says)."""
    return _AddressParser(value).parse()


# -- the envelope ------------------------------------------------------------------------

_ENVELOPE_FIELDS = frozenset({b"date", b"subject", b"in-reply-to", b"message-id"})
_ADDRESS_FIELDS = frozenset({b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc"})


def envelope_from_fields(fields: Sequence[Field]) -> wire.Value:
    """The ENVELOPE of a header given as parsed fields (last occurrence wins)."""
    last: dict[bytes, bytes] = {}
    addresses: dict[bytes, list[Address]] = {}
    for item in fields:
        lname = item.name.lower()
        if lname in _ADDRESS_FIELDS:   # Dovecot: repeated address fields add up
            addresses.setdefault(lname, []).extend(parse_addresses(item.value))
        elif lname in _ENVELOPE_FIELDS:
            last[lname] = item.value

    def address_list(name: bytes) -> wire.Value:
        found = addresses.get(name)
        # RFC 9051 9: "(" 1*address ")" -- the addresses follow each other without spaces
        return Adjacent(address.value() for address in found) if found else None

    from_ = address_list(b"from")
    sender = address_list(b"sender")
    reply_to = address_list(b"reply-to")
    subject = last.get(b"subject")
    return [
        _unfold(last.get(b"date")),
        None if subject is None else _collapse(subject),
        from_,
        sender if sender is not None else from_,
        reply_to if reply_to is not None else from_,
        address_list(b"to"),
        address_list(b"cc"),
        address_list(b"bcc"),
        _unfold(last.get(b"in-reply-to")),
        _unfold(last.get(b"message-id")),
    ]


def _unfold(value: bytes | None) -> bytes | None:
    return None if value is None else value.replace(b"\n", b"")


def envelope(message: bytes) -> wire.Value:
    """FETCH ENVELOPE of a whole message (CRLF line ends)."""
    return envelope_from_fields(parse_header_fields(message))
