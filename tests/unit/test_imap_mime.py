"""MIME structure, ENVELOPE, BODYSTRUCTURE, sections, BINARY and search text (pure code).

The exact wire forms here were checked against Dovecot 2.3 (tests/integration/
test_imap_mime_oracle.py compares the whole corpus); these tests pin the rules one by one.
"""

from __future__ import annotations

import time

import pytest

from appliance.imap.address_list import parse_addresses
from appliance.imap.bodystructure import bodystructure
from appliance.imap.envelope import envelope
from appliance.imap.mime import MAX_NESTING, MESSAGE, MULTIPART, OTHER, TEXT, parse_message
from appliance.imap.mime_render import render
from appliance.imap.mime_tokens import merge_rfc2231, parse_content_type
from appliance.imap.search_text import body_text, decode_header, searchable_text
from appliance.imap.sections import (
    HEADER,
    HEADER_FIELDS,
    HEADER_FIELDS_NOT,
    MIME,
    Section,
    SectionError,
    UnknownCteError,
    binary,
    binary_size,
    decode_base64,
    decode_qp,
    partial,
    section_bytes,
)
from appliance.imap.sections import TEXT as TEXT_SECTION


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


MIXED = crlf("""From: a@example.org
Subject: mixed
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"

preamble
--XYZ
Content-Type: text/plain

First part.
--XYZ
Content-Type: message/rfc822

From: inner@example.org
Subject: inner

inner body
--XYZ--
epilogue
""")


# -- structure -----------------------------------------------------------------------------

def test_multipart_offsets_exclude_the_crlf_before_the_boundary() -> None:
    root = parse_message(MIXED)
    assert root.kind == MULTIPART
    first, second = root.children
    assert first.body == b"First part."          # RFC 2046 5.1.1: CRLF belongs to boundary
    assert first.header == b"Content-Type: text/plain\r\n\r\n"
    assert second.kind == MESSAGE
    inner = second.children[0]
    assert inner.body == b"inner body"
    assert root.end == len(MIXED)


def test_no_content_type_is_text_plain_and_no_mime_version_ignores_content_fields() -> None:
    message = crlf("Subject: x\nContent-Transfer-Encoding: base64\n\nhello\n")
    assert render(bodystructure(message)) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)')


@pytest.mark.parametrize("message", [b"", b"Subject: only a header", b"\r\n", b"--x\r\n"])
def test_degenerate_messages(message: bytes) -> None:
    root = parse_message(message)
    assert root.kind == TEXT
    assert root.header_end <= root.body_offset <= root.end == len(message)
    assert render(bodystructure(message)).startswith(b'("text" "plain"')


def test_header_without_empty_line_is_all_header() -> None:
    root = parse_message(b"From: a@b\r\nSubject: s")
    assert root.header == b"From: a@b\r\nSubject: s"
    assert root.body == b""
    assert [f.name for f in root.fields] == [b"From", b"Subject"]


def test_missing_final_boundary_runs_to_the_end() -> None:
    message = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\nmore\n")
    root = parse_message(message)
    assert [part.body for part in root.children] == [b"one", b"two\r\nmore\r\n"]


def test_boundary_never_found_gives_the_empty_part_dovecot_shows() -> None:
    message = crlf("Content-Type: multipart/mixed; boundary=b\n\n--other\n\ntext\n")
    structure = render(bodystructure(message, extended=False))
    assert structure == b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'


def test_outer_boundary_closes_inner_parts_and_prefix_match_prefers_the_longest() -> None:
    message = crlf("""Content-Type: multipart/mixed; boundary="abc"

--abc
Content-Type: multipart/alternative; boundary="abcdef"

--abcdef

inner one
--abc

outer two
--abc--
""")
    root = parse_message(message)
    inner, outer_two = root.children
    assert inner.kind == MULTIPART
    assert len(inner.children) == 1
    assert inner.children[0].body == b"inner one"
    assert outer_two.body == b"outer two"


def test_digest_parts_default_to_message_rfc822() -> None:
    message = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: in\n\nx\n--d--\n")
    part = parse_message(message).children[0]
    assert part.kind == MESSAGE
    assert part.children[0].fields[0].value == b"in"


def test_nesting_is_bounded_and_the_deepest_part_becomes_octet_stream() -> None:
    levels = MAX_NESTING + 20
    head = b"".join(b"Content-Type: message/rfc822\r\n\r\n" for _ in range(levels))
    root = parse_message(head + b"Subject: bottom\r\n\r\nx\r\n")
    depth, part = 0, root
    while part.children:
        part, depth = part.children[0], depth + 1
    assert depth == MAX_NESTING - 1
    assert part.kind == OTHER
    assert part.too_deep
    assert b'"application" "octet-stream"' in render(bodystructure(head))


def test_folded_fields_keep_their_raw_extent() -> None:
    message = crlf("Subject: a\n\tb\n  c\nTo: x@y\n\nbody")
    root = parse_message(message)
    subject = root.fields[0]
    assert subject.value == b"a\n\tb\n  c"
    assert subject.unfolded == b"a\tb  c"
    assert message[subject.start:subject.end] == b"Subject: a\r\n\tb\r\n  c\r\n"


def test_parsing_is_linear_in_folded_lines_and_dash_lines() -> None:
    folded = b"Subject: x\r\n" + b" y\r\n" * 200_000 + b"\r\nbody"
    dashes = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
              + b"--a\r\n" * 200_000)
    started = time.monotonic()
    assert len(parse_message(folded).fields) == 1
    assert parse_message(dashes).children == []
    assert time.monotonic() - started < 5


# -- Content-Type and RFC 2231 --------------------------------------------------------------

def test_content_type_with_comments_and_quoting() -> None:
    ctype = parse_content_type(b'(c) text/plain (x) ; charset = "utf-8" (y); name="a \\"b\\""')
    assert ctype.mime_type == b"text/plain"
    assert ctype.params == ((b"charset", b"utf-8"), (b"name", b'a "b"'))


@pytest.mark.parametrize(("params", "merged"), [
    ([(b"title*0*", b"us-ascii'en'a%20"), (b"title*1", b"b%c")],
     ((b"title*", b"us-ascii'en'a%20b%25c"),)),
    ([(b"name*1", b"b"), (b"name*0", b"a")], ((b"name", b"ab"),)),
    ([(b"name*0", b"a"), (b"name*2", b"c")], ((b"name*0", b"a"), (b"name*2", b"c"))),
    ([(b"filename*", b"utf-8''%E2%82%AC")], ((b"filename*", b"utf-8''%E2%82%AC"),)),
    ([(b"charset", b"x")], ((b"charset", b"x"),)),
])
def test_rfc2231_is_merged_but_not_decoded(params: list[tuple[bytes, bytes]],
                                           merged: tuple[tuple[bytes, bytes], ...]) -> None:
    assert merge_rfc2231(params) == merged


# -- ENVELOPE --------------------------------------------------------------------------------

def test_envelope_defaults_sender_and_reply_to_to_from_and_keeps_encoded_words() -> None:
    message = crlf("""Date: Mon, 2 Nov 2026 10:00:00 +0100
Subject: =?UTF-8?Q?caf=C3=A9?=  and
 more
From: "A, B" <a@example.org>
To: undisclosed-recipients:;
Message-ID: <id@x>

body""")
    assert render(envelope(message)) == (
        b'("Mon, 2 Nov 2026 10:00:00 +0100" "=?UTF-8?Q?caf=C3=A9?= and more" '
        b'(("A, B" NIL "a" "example.org")) (("A, B" NIL "a" "example.org")) '
        b'(("A, B" NIL "a" "example.org")) '
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL "<id@x>")')


def test_envelope_of_empty_message_is_all_nil() -> None:
    assert envelope(b"") == [None] * 10


@pytest.mark.parametrize(("header", "expected"), [
    (b"a@b", [(None, None, b"a", b"b")]),
    (b"Name <a@b>", [(b"Name", None, b"a", b"b")]),
    (b"a@b (Comment)", [(b"Comment", None, b"a", b"b")]),
    (b"<@r1,@r2:a@b>", [(None, b"@r1,@r2", b"a", b"b")]),
    (b'"odd local"@b', [(None, None, b"odd local", b"b")]),
    (b"nodomain", [(None, None, b"nodomain", b"MISSING_DOMAIN")]),
    (b'"Only Name"', [(b"Only Name", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
    (b"g: a@b, c@d;", [(None, None, b"g", None), (None, None, b"a", b"b"),
                       (None, None, b"c", b"d"), (None, None, None, None)]),
    (b"a@b,, c@d", [(None, None, b"a", b"b"), (None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN"),
                    (None, None, b"c", b"d")]),
    (b"<a@b", [(None, None, b"a", b"SYNTAX_ERROR")]),
    (b"<@>", [(None, b"INVALID_ROUTE", b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
    (b'"" <a@b>', [(None, None, b"a", b"b")]),
    (b'""@b', [(None, None, b"", b"b")]),
    (b"a@b.", [(None, None, b"a", b"MISSING_DOMAIN")]),
    (b"a@b. c", [(None, None, b"a", b"b.c")]),         # obs-domain: CFWS around dots
    (b'"a".b@c', [(b"a", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
    (b"a (unclosed", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
    (b"", []),
])
def test_address_lists(header: bytes, expected: list[tuple[bytes | None, ...]]) -> None:
    got = [(a.name, a.route, a.mailbox, a.host) for a in parse_addresses(header)]
    assert got == expected


# -- BODYSTRUCTURE ---------------------------------------------------------------------------

def test_bodystructure_of_multipart_with_rfc822() -> None:
    assert render(bodystructure(MIXED)) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 53 (NIL "inner" '
        b'((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) '
        b'((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL) 3 '
        b'NIL NIL NIL NIL) "mixed" ("boundary" "XYZ") NIL NIL NIL)')


def test_bodystructure_extension_data() -> None:
    message = crlf("""Content-Type: text/html; charset=utf-8
Content-ID: <i@x>
Content-Description: desc
Content-Transfer-Encoding: base64
Content-MD5: abc=
Content-Disposition: attachment; filename="a.html"
Content-Language: en, de
Content-Location: http://x/a

PGI+
""")
    assert render(bodystructure(message)) == (
        b'("text" "html" ("charset" "utf-8") "<i@x>" "desc" "base64" 6 1 "abc=" '
        b'("attachment" ("filename" "a.html")) ("en" "de") "http://x/a")')


# -- sections and BINARY ---------------------------------------------------------------------

@pytest.mark.parametrize(("section", "expected"), [
    (Section((1,)), b"First part."),
    (Section((1,), MIME), b"Content-Type: text/plain\r\n\r\n"),
    (Section((2,), HEADER), b"From: inner@example.org\r\nSubject: inner\r\n\r\n"),
    (Section((2,), TEXT_SECTION), b"inner body"),
    (Section((2, 1)), b"inner body"),
    (Section((), HEADER_FIELDS, (b"SUBJECT", b"X-None")), b"Subject: mixed\r\n\r\n"),
    (Section((), HEADER_FIELDS_NOT, (b"from", b"subject", b"mime-version")),
     b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'),
    (Section((3,)), None),
    (Section((1, 1)), b"First part."),     # Dovecot: a leaf is its own part 1
    (Section((1, 1, 1)), None),
    (Section((1,), HEADER), None),
])
def test_sections(section: Section, expected: bytes | None) -> None:
    assert section_bytes(MIXED, section) == expected


def test_whole_message_and_partial() -> None:
    assert section_bytes(MIXED, Section()) == MIXED
    assert partial(b"0123456789", 3, 4) == b"3456"
    assert partial(b"0123456789", 8) == b"89"
    assert partial(b"0123", 10, 2) == b""


def test_binary_decodes_and_refuses_what_it_cannot() -> None:
    message = crlf("""Content-Type: multipart/mixed; boundary=b

--b
Content-Transfer-Encoding: base64

aGVs
bG8=
--b
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 soft=
break
--b
Content-Transfer-Encoding: x-uuencode

begin
--b--
""")
    assert binary(message, (1,)) == b"hello"
    assert binary(message, (2,)) == "café softbreak".encode()
    assert binary_size(message, (2,)) == len("café softbreak".encode())
    with pytest.raises(UnknownCteError) as caught:
        binary(message, (3,))
    assert caught.value.code == "UNKNOWN-CTE"
    with pytest.raises(SectionError):     # the whole message holds an undecodable part
        binary(message, ())
    assert binary(message, (4,)) is None


def test_binary_of_a_multipart_converts_every_leaf_like_dovecot() -> None:
    message = crlf("""Content-Type: multipart/mixed; boundary=b

--b
Content-Transfer-Encoding: base64
Content-Type: text/plain

aGVs
bG8=
--b
Content-Type: text/plain

as is
--b--
""")
    assert binary(message, ()) == crlf("""Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain
Content-Transfer-Encoding: binary

hello
--b
Content-Type: text/plain

as is
--b--
""")
    assert binary(message, (1,)) == b"hello"
    assert binary_size(message, ()) == len(binary(message, ()) or b"")


@pytest.mark.parametrize(("encoding", "body", "decoded"), [   # each checked against Dovecot
    (b"quoted-printable", b"lower =c3=a9 hex", "lower é hex".encode()),
    (b"quoted-printable", b"trailing   \r\nspaces\t\r\nend", b"trailing\r\nspaces\r\nend"),
    (b"quoted-printable", b"soft=\r\nbreak=\r\n", b"softbreak"),
    (b"quoted-printable", b"=3D=3d tab=09x", b"== tab\tx"),
    (b"quoted-printable", b"a=\r\n\r\nb", b"a\r\nb"),
    (b"quoted-printable", b"=0D=0A", b"\r\n"),
    (b"base64", b"aGVs\r\nbG8=", b"hello"),
    (b"base64", b"aG Vs bG8=", b"hello"),
    (b"base64", b"aGVsbA==", b"hell"),
    (b"base64", b"", b""),
])
def test_transfer_decoding_matches_dovecot(encoding: bytes, body: bytes, decoded: bytes) -> None:
    message = b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body
    assert binary(message, (1,)) == decoded


def test_lenient_decoders() -> None:
    assert decode_base64(b"aGVsbG8gd29ybGQ") == b"hello world"
    assert decode_base64(b"aGVs bG8*!gd29y\r\nbGQh===") == b"hello world!"
    assert decode_qp(b"a=3Db =ZZ\r\nline  \r\nend=\r\n") == b"a=b =ZZ\r\nline\r\nend"


# -- search text -----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "text"), [
    (b"=?UTF-8?B?R3LDvMOfZQ==?= =?UTF-8?Q?_aus_K=C3=B6ln?= and plain", "Grüße aus Köln and plain"),
    (b"=?ISO-8859-1?Q?caf=E9?=", "café"),
    (b"=?x-unknown?Q?abc?=", "abc"),
    (b"=?utf-8*en?Q?hi?=", "hi"),
    ("raw ünïcode".encode(), "raw ünïcode"),
    (b"latin1 \xe9", "latin1 é"),
    (b"not =?encoded", "not =?encoded"),
])
def test_decode_header(raw: bytes, text: str) -> None:
    assert decode_header(raw) == text


def test_searchable_text_decodes_parts_and_attached_messages() -> None:
    message = crlf("""Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9
--b
Content-Type: application/octet-stream

not text
--b
Content-Type: message/rfc822

Subject: attached

attached text
--b--
""")
    headers, body = searchable_text(message)
    assert "Subject: Grüße" in headers
    for text in ("café", "attached text", "Subject: attached"):
        assert text in body
    assert "not text" not in body
    assert body_text(crlf("Content-Transfer-Encoding: base64\nMIME-Version: 1.0\n\naMOp\n")) == "hé"
