"""Commands valid in any state and before login (RFC 9051 6.1 and 6.2): CAPABILITY, NOOP,
LOGOUT, STARTTLS, AUTHENTICATE (RFC 4959 SASL-IR), LOGIN, ENABLE (RFC 5161), ID (RFC 2971),
IDLE (RFC 2177) and its DONE."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

from appliance.imap.commands.base import ImapCommand, ParseContext, Parser
from appliance.imap.grammar import (
    Cursor,
    ParseError,
    astring,
    keyword,
    nstring,
    paren_list,
    string,
    utf8,
)

MAX_ID_PAIRS = 30          # RFC 2971 3.3: at most 30 field-value pairs
MAX_ID_FIELD = 30          # ... field strings at most 30 octets
MAX_ID_VALUE = 1024        # ... value strings at most 1024 octets
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True)
class Capability(ImapCommand):
    pass


@dataclass(frozen=True)
class Noop(ImapCommand):
    pass


@dataclass(frozen=True)
class Logout(ImapCommand):
    pass


@dataclass(frozen=True)
class StartTls(ImapCommand):
    pass


@dataclass(frozen=True)
class Idle(ImapCommand):
    """IDLE: the session answers "+ idling" and then reads lines until DONE (`is_done`)."""


@dataclass(frozen=True)
class Authenticate(ImapCommand):
    """`initial` is the decoded SASL-IR initial response: None when absent, b"" for "="."""

    mechanism: str
    initial: bytes | None = field(default=None, repr=False)   # a secret: never logged


@dataclass(frozen=True)
class Login(ImapCommand):
    username: str
    password: str = field(repr=False)      # never in logs (STYLE.md practice 10)


@dataclass(frozen=True)
class Enable(ImapCommand):
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Id(ImapCommand):
    """The client's ID parameters, None for `ID NIL`."""

    params: tuple[tuple[str, str | None], ...] | None


def no_arguments(cls: type[ImapCommand]) -> Parser:
    """The parser of a command that takes no arguments."""
    def parse(tag: str, c: Cursor, ctx: ParseContext) -> ImapCommand:
        c.end()
        return cls(tag)
    return parse


def authenticate(tag: str, c: Cursor, ctx: ParseContext) -> Authenticate:
    """authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]
    initial-resp = (base64 / "=")     (RFC 9051 9, RFC 4959)"""
    mechanism = keyword(c)
    initial: bytes | None = None
    if not c.at_end():
        c.sp()
        initial = b"" if c.accept(b"=") else sasl_base64(c.data[c.pos:])
        c.pos = len(c.data)
    c.end()
    return Authenticate(tag, mechanism, initial)


def sasl_base64(data: bytes) -> bytes:
    """A base64 SASL response (initial or a continuation line); BAD when it is not one."""
    if not _BASE64.fullmatch(data) or len(data) % 4:
        raise ParseError("Invalid base64")
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        raise ParseError("Invalid base64") from None


def login(tag: str, c: Cursor, ctx: ParseContext) -> Login:
    """login = "LOGIN" SP userid SP password;  userid = astring; password = astring"""
    username = utf8(astring(c), "user name")
    c.sp()
    password = utf8(astring(c), "password")
    c.end()
    return Login(tag, username, password)


def enable(tag: str, c: Cursor, ctx: ParseContext) -> Enable:
    """enable = "ENABLE" 1*(SP capability)"""
    names = [keyword(c)]
    while not c.at_end():
        c.sp()
        names.append(keyword(c))
    return Enable(tag, tuple(dict.fromkeys(names)))


def id_command(tag: str, c: Cursor, ctx: ParseContext) -> Id:
    """id = "ID" SP id-params-list
    id-params-list = "(" *(string SP nstring) ")" / nil     (RFC 2971 4)"""
    if c.accept(b"NIL"):
        c.end()
        return Id(tag, None)

    def pair(c: Cursor) -> tuple[str, str | None]:
        name = string(c)
        c.sp()
        value = nstring(c)
        if len(name) > MAX_ID_FIELD or (value is not None and len(value) > MAX_ID_VALUE):
            raise ParseError("ID field or value too long")
        return utf8(name, "ID field"), None if value is None else utf8(value, "ID value")

    pairs = paren_list(c, pair)
    c.end()
    if len(pairs) > MAX_ID_PAIRS:
        raise ParseError("Too many ID fields")
    return Id(tag, tuple(pairs))


def is_done(line: bytes) -> bool:
    """Whether a line read during IDLE ends it (RFC 2177: "DONE", any case)."""
    return line.strip(b"\r\n").upper() == b"DONE"


def is_sasl_cancel(line: bytes) -> bool:
    """Whether an AUTHENTICATE continuation line cancels the exchange (RFC 9051 6.2.2)."""
    return line.strip(b"\r\n") == b"*"


