"""FETCH data items and modifiers: table of text → attributes, and malformed items → BAD."""

from __future__ import annotations

import pytest

from appliance.imap.fetch_items import (
    MACROS,
    FetchAttribute,
    FetchKind,
    FetchModifiers,
    Partial,
    Section,
    fetch_attributes,
    fetch_modifiers,
)
from appliance.imap.grammar import Cursor, ParseError

K = FetchKind
A = FetchAttribute


def attrs(text: bytes) -> tuple[FetchAttribute, ...]:
    c = Cursor(text)
    value = fetch_attributes(c)
    c.end()
    return value


CASES: list[tuple[bytes, tuple[FetchAttribute, ...]]] = [
    (b"ALL", MACROS["ALL"]),
    (b"fast", MACROS["FAST"]),
    (b"FULL", MACROS["FULL"]),
    (b"FLAGS", (A(K.FLAGS),)),
    (b"UID", (A(K.UID),)),
    (b"INTERNALDATE", (A(K.INTERNALDATE),)),
    (b"RFC822.SIZE", (A(K.RFC822_SIZE),)),
    (b"ENVELOPE", (A(K.ENVELOPE),)),
    (b"BODY", (A(K.BODY),)),
    (b"BODYSTRUCTURE", (A(K.BODYSTRUCTURE),)),
    (b"RFC822", (A(K.RFC822),)),
    (b"RFC822.HEADER", (A(K.RFC822_HEADER),)),
    (b"RFC822.TEXT", (A(K.RFC822_TEXT),)),
    (b"MODSEQ", (A(K.MODSEQ),)),
    (b"BODY[]", (A(K.BODY_SECTION, Section()),)),
    (b"BODY.PEEK[]", (A(K.BODY_SECTION, Section(), peek=True),)),
    (b"BODY[]<0.2048>", (A(K.BODY_SECTION, Section(), Partial(0, 2048)),)),
    (b"BODY[HEADER]", (A(K.BODY_SECTION, Section(text="HEADER")),)),
    (b"BODY[TEXT]", (A(K.BODY_SECTION, Section(text="TEXT")),)),
    (b"BODY[1]", (A(K.BODY_SECTION, Section((1,))),)),
    (b"BODY[1.2.3]", (A(K.BODY_SECTION, Section((1, 2, 3))),)),
    (b"BODY[1.MIME]", (A(K.BODY_SECTION, Section((1,), "MIME")),)),
    (b"BODY[4.2.HEADER]", (A(K.BODY_SECTION, Section((4, 2), "HEADER")),)),
    (b"BODY[2.TEXT]<5.10>", (A(K.BODY_SECTION, Section((2,), "TEXT"), Partial(5, 10)),)),
    (b"BODY.PEEK[HEADER.FIELDS (DATE FROM)]",
     (A(K.BODY_SECTION, Section(text="HEADER.FIELDS", fields=("DATE", "FROM")), peek=True),)),
    (b"BODY[header.fields.not (X-Spam \"Received\")]",
     (A(K.BODY_SECTION, Section(text="HEADER.FIELDS.NOT", fields=("X-Spam", "Received"))),)),
    (b"BINARY[]", (A(K.BINARY, Section()),)),
    (b"BINARY.PEEK[1.2]<0.100>", (A(K.BINARY, Section((1, 2)), Partial(0, 100), True),)),
    (b"BINARY.SIZE[3]", (A(K.BINARY_SIZE, Section((3,))),)),
    (b"(FLAGS UID)", (A(K.FLAGS), A(K.UID))),
    (b"(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject Date)])",
     (A(K.UID), A(K.RFC822_SIZE), A(K.FLAGS),
      A(K.BODY_SECTION, Section(text="HEADER.FIELDS",
                                fields=("From", "To", "Subject", "Date")), peek=True))),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0].decode() for c in CASES])
def test_attributes(text: bytes, expected: tuple[FetchAttribute, ...]) -> None:
    assert attrs(text) == expected


@pytest.mark.parametrize("text", [
    b"", b"()", b"FOO", b"ALL FLAGS", b"(ALL)", b"BODY[", b"BODY[]]", b"BODY[0]", b"BODY[1.]",
    b"BODY[MIME]", b"BODY[HEADER.FIELDS]", b"BODY[HEADER.FIELDS ()]",
    b"BODY[HEADER.FIELDS (A:B)]", b"BODY[1.FOO]", b"BODY[]<0>", b"BODY[]<0.0>",
    b"BODY[]<1.2", b"BODY.PEEK", b"BINARY[TEXT]", b"BINARY.SIZE", b"BINARY.SIZE[1]<0.1>",
    b"(FLAGS", b"(FLAGS  UID)", b"FLAGS)", b"BODY[1.2.3.4.5.6.7.8.9.0]", b"UID\xff",
    b"BODY[HEADER.FIELDS (\xff)]", b"RFC822.PEEK",
])
def test_invalid(text: bytes) -> None:
    with pytest.raises(ParseError):
        attrs(text)


@pytest.mark.parametrize(("attr", "name", "seen"), [
    (A(K.BODY_SECTION, Section()), "BODY[]", True),
    (A(K.BODY_SECTION, Section(), peek=True), "BODY[]", False),
    (A(K.BODY_SECTION, Section((1,), "MIME"), Partial(10, 20)), "BODY[1.MIME]<10>", True),
    (A(K.BODY_SECTION, Section(text="HEADER.FIELDS", fields=("A", "B"))),
     "BODY[HEADER.FIELDS (A B)]", True),
    (A(K.BINARY, Section((1, 2)), peek=True), "BINARY[1.2]", False),
    (A(K.BINARY_SIZE, Section((1,))), "BINARY.SIZE[1]", False),
    (A(K.RFC822), "RFC822", True),
    (A(K.RFC822_TEXT), "RFC822.TEXT", True),
    (A(K.RFC822_HEADER), "RFC822.HEADER", False),
    (A(K.FLAGS), "FLAGS", False),
])
def test_response_name_and_seen(attr: FetchAttribute, name: str, seen: bool) -> None:
    assert attr.response_name() == name
    assert attr.sets_seen is seen


@pytest.mark.parametrize(("text", "expected"), [
    (b"(CHANGEDSINCE 12345)", FetchModifiers(12345)),
    (b"(changedsince 0)", FetchModifiers(0)),
    (b"(CHANGEDSINCE 5 VANISHED)", FetchModifiers(5, True)),
    (b"(VANISHED CHANGEDSINCE 5)", FetchModifiers(5, True)),
])
def test_modifiers(text: bytes, expected: FetchModifiers) -> None:
    c = Cursor(text)
    assert fetch_modifiers(c) == expected
    c.end()


@pytest.mark.parametrize("text", [b"()", b"(VANISHED)", b"(CHANGEDSINCE)", b"(FOO 1)",
                                  b"(CHANGEDSINCE -1)", b"(CHANGEDSINCE 9223372036854775808)"])
def test_invalid_modifiers(text: bytes) -> None:
    with pytest.raises(ParseError):
        fetch_modifiers(Cursor(text))
