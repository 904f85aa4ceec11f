"""The grammar building blocks: tables of argument text → value or ParseError."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable

import pytest

from appliance.imap import grammar as g
from appliance.imap.grammar import Cursor, ParseError
from appliance.imap.literals import LiteralData


def parse(fn: Callable[[Cursor], object], text: bytes, literals: tuple[bytes, ...] = ()
          ) -> object:
    c = Cursor(text, [LiteralData(len(lit), data=lit) for lit in literals])
    value = fn(c)
    c.end()
    return value


UTC = dt.UTC
VALID: list[tuple[str, Callable[[Cursor], object], bytes, tuple[bytes, ...], object]] = [
    ("atom", g.atom, b"FOO.bar-1", (), "FOO.bar-1"),
    ("atom with [", g.atom, b"BODY[", (), "BODY["),
    ("keyword upper-cases", g.keyword, b"fetch", (), "FETCH"),
    ("astring atom", g.astring, b"abc]def", (), b"abc]def"),
    ("astring quoted", g.astring, b'"a b"', (), b"a b"),
    ("astring quoted escapes", g.astring, b'"a\\"b\\\\c"', (), b'a"b\\c'),
    ("astring quoted empty", g.astring, b'""', (), b""),
    ("astring quoted UTF-8", g.astring, '"grüße"'.encode(), (), "grüße".encode()),
    ("astring literal", g.astring, b"{3}", (b"a\r\n",), b"a\r\n"),
    ("astring non-sync literal", g.astring, b"{3+}", (b"xyz",), b"xyz"),
    ("string literal", g.string, b"{0}", (b"",), b""),
    ("nstring NIL", g.nstring, b"NIL", (), None),
    ("nstring nil lower", g.nstring, b"nil", (), None),
    ("nstring quoted NIL", g.nstring, b'"NIL"', (), b"NIL"),
    ("number", g.number, b"4294967295", (), 4294967295),
    ("number zero", g.number, b"0", (), 0),
    ("nz-number", g.nz_number, b"17", (), 17),
    ("mod-sequence 63-bit", g.mod_sequence, b"9223372036854775807", (), 2**63 - 1),
    ("date", g.date, b"1-Feb-1994", (), dt.date(1994, 2, 1)),
    ("date quoted", g.date, b'"01-feb-1994"', (), dt.date(1994, 2, 1)),
    ("date-time", g.date_time, b'"17-Jul-1996 02:44:25 -0700"', (),
     dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7)))),
    ("date-time space day", g.date_time, b'" 7-Jul-1996 02:44:25 +0000"', (),
     dt.datetime(1996, 7, 7, 2, 44, 25, tzinfo=UTC)),
    ("flag system canonical case", g.flag, b"\\seen", (), "\\Seen"),
    ("flag keyword", g.flag, b"$Forwarded", (), "$Forwarded"),
    ("flag extension", g.flag, b"\\Custom", (), "\\Custom"),
    ("flag list", g.flag_list, b"(\\Seen \\DRAFT $Junk)", (), ("\\Seen", "\\Draft", "$Junk")),
    ("flag list empty", g.flag_list, b"()", (), ()),
    ("mailbox INBOX any case", lambda c: g.mailbox(c, False), b"iNbOx", (), "INBOX"),
    ("mailbox INBOX quoted", lambda c: g.mailbox(c, False), b'"inbox"', (), "INBOX"),
    ("mailbox child of inbox keeps case", lambda c: g.mailbox(c, False), b"inbox/x", (),
     "inbox/x"),
    ("mailbox mUTF-7", lambda c: g.mailbox(c, False), b"Entw&APw-rfe", (), "Entwürfe"),
    ("mailbox UTF-8 when enabled", lambda c: g.mailbox(c, True), '"Entwürfe"'.encode(), (),
     "Entwürfe"),
    ("mailbox & stays when UTF-8", lambda c: g.mailbox(c, True), b"A&B", (), "A&B"),
    ("mailbox literal", lambda c: g.mailbox(c, False), b"{4}", (b"a b/", ), "a b/"),
    ("list-mailbox wildcards", lambda c: g.list_mailbox(c, False), b"Arch%/*", (),
     "Arch%/*"),
    ("list-mailbox quoted", lambda c: g.list_mailbox(c, False), b'"*"', (), "*"),
    ("paren list nested", lambda c: g.paren_list(c, lambda c: g.paren_list(c, g.atom)),
     b"((a b) () (c))", (), [["a", "b"], [], ["c"]]),
]


@pytest.mark.parametrize(("fn", "text", "literals", "expected"),
                         [case[1:] for case in VALID], ids=[case[0] for case in VALID])
def test_valid(fn: Callable[[Cursor], object], text: bytes, literals: tuple[bytes, ...],
               expected: object) -> None:
    assert parse(fn, text, literals) == expected


INVALID: list[tuple[str, Callable[[Cursor], object], bytes, tuple[bytes, ...]]] = [
    ("atom empty", g.atom, b"", ()),
    ("atom special", g.atom, b"(x", ()),
    ("atom 8-bit", g.atom, b"\xc3\xa9", ()),
    ("atom wildcard", g.atom, b"*", ()),
    ("astring 8-bit atom", g.astring, b"gr\xc3\xbc", ()),
    ("quoted unterminated", g.astring, b'"abc', ()),
    ("quoted bad escape", g.astring, b'"a\\b"', ()),
    ("quoted CR", g.astring, b'"a\rb"', ()),
    ("quoted NUL", g.astring, b'"a\x00b"', ()),
    ("literal missing data", g.astring, b"{3}", ()),
    ("literal size mismatch", g.astring, b"{4}", (b"abc",)),
    ("literal NUL", g.astring, b"{3}", (b"a\x00c",)),
    ("literal8 as a string", g.astring, b"~{3}", (b"abc",)),
    ("extra literal", g.atom, b"a", (b"x",)),
    ("number too big", g.number, b"4294967296", ()),
    ("number huge", g.number, b"9" * 40, ()),
    ("number empty", g.number, b"", ()),
    ("number negative", g.number, b"-1", ()),
    ("nz-number zero", g.nz_number, b"0", ()),
    ("mod-sequence too big", g.mod_sequence, b"9223372036854775808", ()),
    ("date bad month", g.date, b"1-Foo-1994", ()),
    ("date bad day", g.date, b"31-Feb-1994", ()),
    ("date unbalanced quote", g.date, b'"1-Feb-1994', ()),
    ("date-time unquoted", g.date_time, b"17-Jul-1996 02:44:25 -0700", ()),
    ("date-time bad hour", g.date_time, b'"17-Jul-1996 25:44:25 -0700"', ()),
    ("date-time no zone", g.date_time, b'"17-Jul-1996 02:44:25"', ()),
    ("flag list unbalanced", g.flag_list, b"(\\Seen", ()),
    ("flag list extra paren", g.flag_list, b"(\\Seen))", ()),
    ("flag list double space", g.flag_list, b"(a  b)", ()),
    ("flag bare backslash", g.flag_list, b"(\\)", ()),
    ("mailbox 8-bit without UTF8", lambda c: g.mailbox(c, False), '"Entwürfe"'.encode(), ()),
    ("mailbox bad mUTF-7", lambda c: g.mailbox(c, False), b"A&B", ()),
    ("mailbox invalid UTF-8", lambda c: g.mailbox(c, True), b'"\xff"', ()),
    ("deep nesting", lambda c: _deep(c), b"(" * 100 + b")" * 100, ()),
]


def _deep(c: Cursor) -> object:
    return g.paren_list(c, _deep)


@pytest.mark.parametrize(("fn", "text", "literals"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid(fn: Callable[[Cursor], object], text: bytes,
                 literals: tuple[bytes, ...]) -> None:
    with pytest.raises(ParseError) as info:
        parse(fn, text, literals)
    assert info.value.status == "BAD"
    assert info.value.text
    assert info.value.text.isascii()


def test_nesting_limit_is_exact() -> None:
    ok = b"(" * g.MAX_NESTING + b")" * g.MAX_NESTING
    assert parse(_deep, ok) is not None
    too_deep = b"(" * (g.MAX_NESTING + 1) + b")" * (g.MAX_NESTING + 1)
    with pytest.raises(ParseError, match="nested"):
        parse(_deep, too_deep)


def test_error_text_never_echoes_raw_octets() -> None:
    with pytest.raises(ParseError) as info:
        parse(g.atom, b"\r\n\xff\x00 x")
    assert info.value.text.isascii()
    assert "\r" not in info.value.text
    assert "\n" not in info.value.text


def test_literal_keeps_spooled_data_unread() -> None:
    with tempfile.TemporaryFile() as spool:
        spool.write(b"x" * 100)
        c = Cursor(b"~{100}", [LiteralData(100, binary=True, file=spool)])
        data = g.literal(c)
        c.end()
        assert data.binary
        assert not data.in_memory
        assert data.read() == b"x" * 100
