"""Fuzz the MIME structure, ENVELOPE, BODYSTRUCTURE, sections, BINARY and search text:
nothing raises (except SectionError from BINARY), offsets stay ordered and inside the
message, every part's section is a slice of the message, and output renders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap.address_list import parse_addresses
from appliance.imap.bodystructure import bodystructure, structure
from appliance.imap.envelope import envelope_from_fields
from appliance.imap.mime import MESSAGE, MULTIPART, Part, parse_message
from appliance.imap.mime_render import render
from appliance.imap.mime_tokens import parse_content_type, parse_disposition
from appliance.imap.search_text import decode_header, searchable_text
from appliance.imap.sections import (
    HEADER,
    HEADER_FIELDS,
    HEADER_FIELDS_NOT,
    MIME,
    TEXT,
    Section,
    SectionError,
    binary,
    section_bytes,
)

# Pieces that make the parser's decisions: boundaries (also as prefixes of each other),
# content types, encodings, folding, line ends, encoded words.
LINES = st.sampled_from([
    b"--a", b"--ab", b"--a--", b"--ab--", b"--", b"", b" folded", b"\tfolded",
    b"Content-Type: multipart/mixed; boundary=a", b"Content-Type: multipart/mixed; boundary=ab",
    b"Content-Type: multipart/digest; boundary=\"a\"", b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset*0*=utf-8''%C3; charset*1=x", b"Content-Type: text",
    b"Content-Type: ;;", b"MIME-Version: 1.0", b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: x-what",
    b"Content-Disposition: attachment; filename*=utf-8''a%20b", b"Content-Language: en, de",
    b"From: A <a@b>, g: c@d, e;", b"To: \"q\\\" x\" <@r:x@y> (c)", b"Subject: =?utf-8?Q?a=C3?=",
    b"aGVsbG8=", b"=3D=ZZ=", b"text \xff\x00", b"no colon", b"(((", b"\"unterminated",
])
ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\n"])


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(LINES, ENDINGS), max_size=40))
    tail = draw(st.sampled_from([b"", b"--a", b"trailing"]))
    return b"".join(line + end for line, end in lines) + tail


def walk(part: Part, path: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Part]]:
    if part.kind == MULTIPART:
        for index, child in enumerate(part.children):
            yield (*path, index + 1), child
            yield from walk(child, (*path, index + 1))
    elif part.kind == MESSAGE and part.children:
        yield from walk(part.children[0], (*path, 1))


def check_tree(part: Part, size: int) -> None:
    assert 0 <= part.offset <= part.header_end <= part.body_offset <= part.end <= size
    for item in part.fields:
        assert part.offset <= item.start < item.end <= part.header_end
    for child in part.children:
        assert part.body_offset <= child.offset
        assert child.end <= part.end
        check_tree(child, size)


def check_everything(data: bytes) -> None:
    root = parse_message(data)
    check_tree(root, len(data))
    render(bodystructure(data))
    render(bodystructure(data, extended=False))
    render(envelope_from_fields(root.fields), utf8=True)
    searchable_text(data)
    for path, part in [((), root), *walk(root, ())]:
        render(structure(part))
        for text in (None, HEADER, TEXT, MIME, HEADER_FIELDS, HEADER_FIELDS_NOT):
            got = section_bytes(root, Section(path, text, (b"subject", b"from")))
            if text in (None, HEADER, TEXT, MIME) and got is not None and path:
                assert got in data
        with contextlib.suppress(SectionError):
            binary(root, path)


@settings(max_examples=400, deadline=None)
@given(messages())
def test_structured_messages_never_break_the_parser(data: bytes) -> None:
    check_everything(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_break_the_parser(data: bytes) -> None:
    check_everything(data)


@given(st.binary(max_size=200))
def test_header_value_parsers_never_raise(value: bytes) -> None:
    parse_content_type(value)
    parse_disposition(value)
    render(envelope_from_fields([]))
    for address in parse_addresses(value):
        assert address.mailbox is not None or address.host is None
    decode_header(value)
