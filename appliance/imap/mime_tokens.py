"""RFC 5322 / RFC 2045 lexical pieces for MIME headers: tokens, quoted strings, comments,
Content-Type and its parameters (with RFC 2231 continuations merged as Dovecot does).

Everything works on bytes and never raises on malformed input: a broken value yields what
could be read, the way Dovecot's rfc822-parser and rfc2231-parser do, so that our
BODYSTRUCTURE matches Dovecot's for the same message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 2045 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?=')
_MIME_TOKEN_STOP = _TSPECIALS | frozenset(range(0x21)) | frozenset({0x7F})
# RFC 5322 3.2.3 atext (8-bit bytes are let through, as Dovecot does for UTF-8 headers)
_ATOM_STOP = frozenset(b'()<>[]:;@\\,."') | frozenset(range(0x21)) | frozenset({0x7F})
_LWSP = frozenset(b" \t\r\n")
_TOKEN_RE = re.compile(rb"[^()<>@,;:\\\"/\[\]?=\x00-\x20\x7f]+")
_ATOM_RE = re.compile(rb"[^()<>\[\]:;@\\,.\"\x00-\x20\x7f]+")
_RAW_WORD = re.compile(rb"[^; \t\r\n]*")


class Lexer:
    """A cursor over one header value (RFC 5322 3.2: CFWS, atoms, quoted strings)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int:
        """The next byte, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def skip_cfws(self) -> bool:
        """Skip white space and (nested) comments; False when at the end afterwards."""
        data, end = self.data, len(self.data)
        while self.pos < end:
            byte = data[self.pos]
            if byte in _LWSP:
                self.pos += 1
            elif byte == 0x28:  # "("
                self._skip_comment()
            else:
                return True
        return False

    def _skip_comment(self) -> None:
        depth = 0
        data, end = self.data, len(self.data)
        while self.pos < end:
            byte = data[self.pos]
            self.pos += 1
            if byte == 0x5C:  # quoted-pair inside a comment
                self.pos += 1
            elif byte == 0x28:
                depth += 1
            elif byte == 0x29:
                depth -= 1
                if depth == 0:
                    return
        self.pos = end  # unterminated comment swallows the rest

    def mime_token(self) -> bytes:
        """RFC 2045 token at the cursor (b"" when none)."""
        match = _TOKEN_RE.match(self.data, self.pos)
        if match is None:
            return b""
        self.pos = match.end()
        return match.group()

    def raw_word(self) -> bytes:
        """Everything up to the next `;` or white space."""
        match = _RAW_WORD.match(self.data, self.pos)
        assert match is not None
        self.pos = match.end()
        return match.group()

    def atom(self) -> bytes:
        match = _ATOM_RE.match(self.data, self.pos)
        if match is None:
            return b""
        self.pos = match.end()
        return match.group()

    def quoted_string(self) -> bytes | None:
        """RFC 5322 3.2.4 quoted-string at the cursor (which is on the DQUOTE), unquoted;
        folding CRLFs inside are dropped. None when it is not terminated."""
        out = bytearray()
        data, end = self.data, len(self.data)
        self.pos += 1
        while self.pos < end:
            byte = data[self.pos]
            self.pos += 1
            if byte == 0x22:
                return bytes(out)
            if byte == 0x5C and self.pos < end:
                byte = data[self.pos]
                self.pos += 1
            elif byte in (0x0D, 0x0A):
                continue
            out.append(byte)
        return None


@dataclass(frozen=True)
class ContentType:
    """A parsed Content-Type: `mime_type` is b"type/subtype" as written (b"" if broken)."""

    mime_type: bytes
    params: tuple[tuple[bytes, bytes], ...]
    broken: bool

    @property
    def main(self) -> bytes:
        return self.mime_type.partition(b"/")[0]

    @property
    def sub(self) -> bytes | None:
        _, slash, tail = self.mime_type.partition(b"/")
        return tail if slash else None

    def param(self, name: bytes) -> bytes | None:
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return value
        return None


def parse_mime_type(lex: Lexer) -> tuple[bytes, bool]:
    """`type "/" subtype` (RFC 2045 5.1); returns (value, ok). On failure the value is
    b"", except for a type alone (Dovecot keeps it)."""
    if not lex.skip_cfws():
        return b"", False
    main = lex.mime_token()
    if main and not lex.skip_cfws():
        return main, False     # "text" alone: Dovecot keeps the type, with no subtype
    if not main or lex.peek() != 0x2F:
        return b"", False
    lex.pos += 1
    if not lex.skip_cfws():
        return b"", False
    sub = lex.mime_token()
    if not sub or (lex.skip_cfws() and lex.peek() != 0x3B):
        return b"", False      # no subtype, or junk after it
    return main + b"/" + sub, True


def parse_content_type(value: bytes) -> ContentType:
    """Content-Type: type/subtype and its parameters (RFC 2045 5.1, RFC 2231)."""
    lex = Lexer(value)
    mime_type, ok = parse_mime_type(lex)
    if not ok:
        return ContentType(mime_type, (), True)
    return ContentType(mime_type, parse_params(lex), False)


def parse_disposition(value: bytes) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """Content-Disposition (RFC 2183): (type, params); the type is b"" when missing, as
    Dovecot shows it."""
    lex = Lexer(value)
    lex.skip_cfws()
    token = lex.mime_token()
    return token, parse_params(lex)


_END, _BROKEN = "end", "broken"


def _param(lex: Lexer) -> tuple[bytes, bytes] | str:
    """One `; key=value` (RFC 2045 5.1): the pair, or _END, or _BROKEN."""
    if not lex.skip_cfws():
        return _END
    if lex.peek() != 0x3B:  # ";"
        return _BROKEN
    lex.pos += 1
    if not lex.skip_cfws():
        return _BROKEN
    key = lex.mime_token()
    if not key or not lex.skip_cfws() or lex.peek() != 0x3D:  # "="
        return _BROKEN
    lex.pos += 1
    if not lex.skip_cfws():
        return _BROKEN
    if lex.peek() == 0x22:
        value = lex.quoted_string()
    elif lex.data.startswith(b"=?", lex.pos):
        value = lex.raw_word()     # name==?utf-8?B?...?= : Dovecot takes it as it is
    else:
        value = lex.mime_token() or None
    return _BROKEN if value is None else (key, value)


def parse_params(lex: Lexer) -> tuple[tuple[bytes, bytes], ...]:
    """The `*(";" parameter)` list, RFC 2231 continuations merged (see `merge_rfc2231`).
    A broken parameter is skipped one byte at a time, as Dovecot does."""
    plain: list[tuple[bytes, bytes]] = []
    while (item := _param(lex)) != _END:
        if isinstance(item, tuple):
            plain.append(item)
        elif lex.at_end:
            break
        else:
            lex.pos += 1
    return merge_rfc2231(plain)


def _split_2231(key: bytes) -> tuple[bytes, int, bool] | None:
    """`name*N*` → (name, N, extended); None when the key is not RFC 2231 shaped."""
    star = key.find(b"*")
    if star < 0:
        return None
    rest = key[star + 1:]
    if not rest:
        return key[:star], 0, True     # `name*=charset'lang'value`
    digits = len(rest) - len(rest.lstrip(b"0123456789"))
    index = int(rest[:digits]) if digits else 0
    rest = rest[digits:]
    extended = rest == b"*"
    if rest not in (b"", b"*"):
        return None
    return key[:star], index, extended


def merge_rfc2231(params: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """Merge `name*0=`, `name*1*=` ... into one parameter (RFC 2231 3 and 4).

    Like Dovecot, the charset and percent-encoding are kept, not decoded: the merged key
    is `name*` with a value `charset'lang'text` when any piece was extended (plain pieces
    get `%` escaped as `%25`), else `name` with the pieces joined. When an index is
    missing the pieces are returned one by one as `name*N` / `name*N*`.
    """
    result: list[tuple[bytes, bytes]] = []
    pieces: list[tuple[bytes, int, bool, bytes]] = []
    for key, value in params:
        split = _split_2231(key)
        if split is None:
            result.append((key, value))
        else:
            pieces.append((*split, value))
    pieces.sort(key=lambda item: (item[0], item[1]))
    start = 0
    while start < len(pieces):
        stop = start
        name = pieces[start][0].lower()
        while stop < len(pieces) and pieces[stop][0].lower() == name:
            stop += 1
        result.extend(_merge_group(pieces[start:stop]))
        start = stop
    return tuple(result)


def _merge_group(group: list[tuple[bytes, int, bool, bytes]]) -> list[tuple[bytes, bytes]]:
    complete = all(index == wanted for wanted, (_, index, _, _) in enumerate(group))
    if not complete:
        return [(name + b"*" + str(index).encode() + (b"*" if ext else b""), value)
                for name, index, ext, value in group]
    any_extended = any(ext for _, _, ext, _ in group)
    out = bytearray(b"''" if any_extended and not group[0][2] else b"")
    for _, _, ext, value in group:
        out += value.replace(b"%", b"%25") if any_extended and not ext else value
    return [(group[0][0] + (b"*" if any_extended else b""), bytes(out))]


def parse_language(value: bytes) -> list[bytes]:
    """Content-Language (RFC 3282): the comma-separated tags, as atoms."""
    lex = Lexer(value)
    tags: list[bytes] = []
    lex.skip_cfws()
    while True:
        lex.skip_cfws()
        tag = lex.atom()
        if not tag:
            break
        tags.append(tag)
        lex.skip_cfws()
        if lex.peek() != 0x2C:
            break
        lex.pos += 1
    return tags


def parse_encoding(value: bytes) -> bytes | None:
    """Content-Transfer-Encoding (RFC 2045 6.1): the token, None when malformed."""
    lex = Lexer(value)
    lex.skip_cfws()
    token = lex.mime_token()
    if not token or lex.skip_cfws():
        return None
    return token
