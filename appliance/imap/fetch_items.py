"""FETCH data items and modifiers (RFC 9051 6.4.5 and 9, RFC 3501 6.4.5, RFC 3516 BINARY,
RFC 7162 MODSEQ/CHANGEDSINCE/VANISHED) parsed into frozen dataclasses.

    fetch       = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
                  fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
    fetch-att   = "ENVELOPE" / "FLAGS" / "INTERNALDATE" / "RFC822.SIZE" /
                  "BODY" ["STRUCTURE"] / "UID" / "BODY" section [partial] /
                  "BODY.PEEK" section [partial] / "BINARY" [".PEEK"] section-binary [partial] /
                  "BINARY.SIZE" section-binary / "MODSEQ" /
                  "RFC822" / "RFC822.HEADER" / "RFC822.TEXT"          (RFC 3501)
    partial     = "<" number64 "." nz-number64 ">"
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from appliance.imap.grammar import (
    UINT63_MAX,
    Cursor,
    ParseError,
    astring,
    mod_sequence,
    number,
    nz_number,
    paren_list,
)


class FetchKind(enum.StrEnum):
    ENVELOPE = "ENVELOPE"
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822_SIZE = "RFC822.SIZE"
    BODY = "BODY"                      # the non-extensible BODYSTRUCTURE
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    BODY_SECTION = "BODY[]"            # BODY[section]<partial> and BODY.PEEK[...]
    BINARY = "BINARY[]"                # BINARY[part]<partial> and BINARY.PEEK[...]
    BINARY_SIZE = "BINARY.SIZE"
    RFC822 = "RFC822"
    RFC822_HEADER = "RFC822.HEADER"
    RFC822_TEXT = "RFC822.TEXT"
    MODSEQ = "MODSEQ"


_SIMPLE = {kind.value: kind for kind in FetchKind if not kind.value.endswith("[]")}
_SIMPLE.pop("BINARY.SIZE")
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[0-9]+(?:\.[0-9]+)*")
# section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
# section-text = section-msgtext / "MIME"
_TEXT_SPECS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")


@dataclass(frozen=True)
class Section:
    """section-spec: `part` numbers ("1.2" → (1, 2)), then an optional `text` specifier
    (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME) with `fields` for the lists."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        pieces = [".".join(map(str, self.part))] if self.part else []
        if self.text:
            pieces.append(self.text)
        spec = ".".join(pieces)
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True)
class Partial:
    """<start.length>: octets from `start`, at most `length` of them."""

    start: int
    length: int


@dataclass(frozen=True)
class FetchAttribute:
    kind: FetchKind
    section: Section | None = None     # BODY[...], BINARY[...], BINARY.SIZE[...]
    partial: Partial | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        """Fetching it sets \\Seen (RFC 9051 6.4.5: BODY[...] and BINARY[...] without PEEK,
        RFC 3501: RFC822 and RFC822.TEXT)."""
        if self.kind in (FetchKind.BODY_SECTION, FetchKind.BINARY):
            return not self.peek
        return self.kind in (FetchKind.RFC822, FetchKind.RFC822_TEXT)

    def response_name(self) -> str:
        """The item's name in the FETCH response (PEEK dropped; a partial shows its start,
        RFC 9051 7.5.2)."""
        if self.kind is FetchKind.BODY_SECTION or self.kind is FetchKind.BINARY:
            name = "BODY" if self.kind is FetchKind.BODY_SECTION else "BINARY"
            origin = f"<{self.partial.start}>" if self.partial else ""
            return f"{name}[{self.section or ''}]{origin}"
        if self.kind is FetchKind.BINARY_SIZE:
            return f"BINARY.SIZE[{self.section or ''}]"
        return self.kind.value


@dataclass(frozen=True)
class FetchModifiers:
    """fetch-modifier = "CHANGEDSINCE" SP mod-sequence-valzer / "VANISHED" (RFC 7162 3.1.4,
    3.2.6)."""

    changed_since: int | None = None
    vanished: bool = False


_FAST = (FetchAttribute(FetchKind.FLAGS), FetchAttribute(FetchKind.INTERNALDATE),
         FetchAttribute(FetchKind.RFC822_SIZE))
MACROS: dict[str, tuple[FetchAttribute, ...]] = {
    "FAST": _FAST,
    "ALL": (*_FAST, FetchAttribute(FetchKind.ENVELOPE)),
    "FULL": (*_FAST, FetchAttribute(FetchKind.ENVELOPE), FetchAttribute(FetchKind.BODY)),
}


def fetch_attributes(c: Cursor) -> tuple[FetchAttribute, ...]:
    """("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")"""
    if c.peek() == b"(":
        return tuple(paren_list(c, fetch_attribute, allow_empty=False))
    start = c.pos
    found = c.match(_NAME)
    if found and found.group().upper().decode() in MACROS and c.peek() in (b"", b" "):
        return MACROS[found.group().upper().decode()]
    c.pos = start
    return (fetch_attribute(c),)


def fetch_attribute(c: Cursor) -> FetchAttribute:
    found = c.match(_NAME)
    if not found:
        raise ParseError(f"Expected a FETCH item at {c.where()}")
    name = found.group().decode("ascii").upper()
    if c.peek() != b"[":
        if name == "BODY.PEEK" or name not in _SIMPLE:
            raise ParseError(f"Unknown FETCH item {name}")
        return FetchAttribute(_SIMPLE[name])
    if name in ("BODY", "BODY.PEEK"):
        section = _section(c)
        return FetchAttribute(FetchKind.BODY_SECTION, section, _partial(c), name != "BODY")
    if name in ("BINARY", "BINARY.PEEK"):
        section = _section_binary(c)
        return FetchAttribute(FetchKind.BINARY, section, _partial(c), name != "BINARY")
    if name == "BINARY.SIZE":
        return FetchAttribute(FetchKind.BINARY_SIZE, _section_binary(c))
    raise ParseError(f"Unknown FETCH item {name}")


def _section(c: Cursor) -> Section:
    """section = "[" [section-spec] "]"
    section-spec = section-msgtext / (section-part ["." section-text])"""
    c.expect(b"[")
    if c.accept(b"]"):
        return Section()
    part: tuple[int, ...] = ()
    if c.peek().isdigit():
        part = _section_part(c)
        if c.accept(b"]"):
            return Section(part)
        c.expect(b".")
    text = next((spec for spec in _TEXT_SPECS if c.accept(spec.encode())), None)
    if text is None or (text == "MIME" and not part):
        raise ParseError(f"Invalid section at {c.where()}")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        c.sp()
        fields = tuple(paren_list(c, _header_name, allow_empty=False))
    c.expect(b"]")
    return Section(part, text, fields)


def _section_binary(c: Cursor) -> Section:
    """section-binary = "[" [section-part] "]" """
    c.expect(b"[")
    part = () if c.peek() == b"]" else _section_part(c)
    c.expect(b"]")
    return Section(part)


def _section_part(c: Cursor) -> tuple[int, ...]:
    """section-part = nz-number *("." nz-number)"""
    parts = [nz_number(c)]
    while c.peek(2)[:1] == b"." and c.peek(2)[1:].isdigit():
        c.pos += 1
        parts.append(nz_number(c))
    return tuple(parts)


def _header_name(c: Cursor) -> str:
    """header-fld-name = astring (RFC 5322 field names: printable ASCII without colon)"""
    raw = astring(c)
    if not raw or not all(0x21 <= byte <= 0x7E and byte != 0x3A for byte in raw):
        raise ParseError("Invalid header field name")
    return raw.decode("ascii")


def _partial(c: Cursor) -> Partial | None:
    if not c.accept(b"<"):
        return None
    start = number(c, UINT63_MAX)
    c.expect(b".")
    length = nz_number(c, UINT63_MAX)
    c.expect(b">")
    return Partial(start, length)


def fetch_modifiers(c: Cursor) -> FetchModifiers:
    """fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")" (after the SP)"""
    changed_since: int | None = None
    vanished = False

    def modifier(c: Cursor) -> None:
        nonlocal changed_since, vanished
        name = c.match(_NAME)
        upper = name.group().upper() if name else b""
        if upper == b"CHANGEDSINCE":
            c.sp()
            changed_since = mod_sequence(c, allow_zero=True)
        elif upper == b"VANISHED":
            vanished = True
        else:
            raise ParseError("Unknown FETCH modifier")

    paren_list(c, modifier, allow_empty=False)
    if vanished and changed_since is None:
        # RFC 7162 3.2.6: VANISHED without CHANGEDSINCE is a BAD.
        raise ParseError("VANISHED requires CHANGEDSINCE")
    return FetchModifiers(changed_since, vanished)
