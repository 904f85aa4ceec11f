"""SEARCH: the grammar (text → AST or error) and the evaluator over a small real mailbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from appliance.imap.grammar import Cursor, ParseError
from appliance.imap.literals import LiteralData
from appliance.imap.search_eval import (
    SearchContext,
    esearch_data,
    matches,
    saved_result,
    search,
)
from appliance.imap.search_keys import (
    All,
    And,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SearchProgram,
    SequenceKey,
    SizeKey,
    TextKey,
    search_program,
)
from appliance.imap.sequence_set import STAR, NumberSet, SequenceSet


def program(text: bytes) -> SearchProgram:
    return search_program(Cursor(text))


def key(text: bytes) -> SearchKey:
    return program(text).key


D = dt.date(1994, 2, 1)
KEYS: list[tuple[bytes, SearchKey]] = [
    (b"ALL", All()),
    (b"ANSWERED", FlagKey("\\Answered")),
    (b"UNANSWERED", FlagKey("\\Answered", False)),
    (b"DELETED", FlagKey("\\Deleted")),
    (b"UNDELETED", FlagKey("\\Deleted", False)),
    (b"DRAFT", FlagKey("\\Draft")),
    (b"UNDRAFT", FlagKey("\\Draft", False)),
    (b"FLAGGED", FlagKey("\\Flagged")),
    (b"UNFLAGGED", FlagKey("\\Flagged", False)),
    (b"SEEN", FlagKey("\\Seen")),
    (b"unseen", FlagKey("\\Seen", False)),
    (b"RECENT", FlagKey("\\Recent")),
    (b"OLD", FlagKey("\\Recent", False)),
    (b"NEW", And((FlagKey("\\Recent"), FlagKey("\\Seen", False)))),
    (b"KEYWORD $Junk", FlagKey("$Junk")),
    (b"UNKEYWORD $Junk", FlagKey("$Junk", False)),
    (b"BCC bob", HeaderKey("BCC", "bob")),
    (b"CC \"a b\"", HeaderKey("CC", "a b")),
    (b"FROM {5}", HeaderKey("FROM", "alice")),
    (b"TO x", HeaderKey("TO", "x")),
    (b"SUBJECT \"gr\xc3\xbc\xc3\x9fe\"", HeaderKey("SUBJECT", "grüße")),
    (b"HEADER X-Mailer \"\"", HeaderKey("X-MAILER", "")),
    (b"BODY hello", TextKey("hello")),
    (b"TEXT hello", TextKey("hello", headers=True)),
    (b"BEFORE 1-Feb-1994", DateKey("BEFORE", D)),
    (b"ON \"1-Feb-1994\"", DateKey("ON", D)),
    (b"SINCE 01-feb-1994", DateKey("SINCE", D)),
    (b"SENTBEFORE 1-Feb-1994", DateKey("BEFORE", D, sent=True)),
    (b"SENTON 1-Feb-1994", DateKey("ON", D, sent=True)),
    (b"SENTSINCE 1-Feb-1994", DateKey("SINCE", D, sent=True)),
    (b"LARGER 1000", SizeKey(1000, larger=True)),
    (b"SMALLER 1000", SizeKey(1000, larger=False)),
    (b"UID 1:*", SequenceKey(SequenceSet(((1, STAR),)), uid=True)),
    (b"1,3:4", SequenceKey(SequenceSet(((1, 1), (3, 4))))),
    (b"*", SequenceKey(SequenceSet(((STAR, STAR),)))),
    (b"$", SequenceKey(SequenceSet(saved=True))),
    (b"UID $", SequenceKey(SequenceSet(saved=True), uid=True)),
    (b"NOT SEEN", Not(FlagKey("\\Seen"))),
    (b"OR SEEN FLAGGED", Or(FlagKey("\\Seen"), FlagKey("\\Flagged"))),
    (b"(SEEN)", FlagKey("\\Seen")),
    (b"(SEEN FLAGGED)", And((FlagKey("\\Seen"), FlagKey("\\Flagged")))),
    (b"SEEN FLAGGED", And((FlagKey("\\Seen"), FlagKey("\\Flagged")))),
    (b"OR (FROM a TO b) NOT (OR 1 2)", Or(And((HeaderKey("FROM", "a"), HeaderKey("TO", "b"))),
                                          Not(Or(SequenceKey(SequenceSet(((1, 1),))),
                                                 SequenceKey(SequenceSet(((2, 2),))),
                                                 )))),
    (b"MODSEQ 620162338", ModSeqKey(620162338)),
    (b'MODSEQ "/flags/\\\\draft" all 0', ModSeqKey(0, "/flags/\\draft", "all")),
]


@pytest.mark.parametrize(("text", "expected"), KEYS, ids=[k[0].decode("latin-1") for k in KEYS])
def test_keys(text: bytes, expected: SearchKey) -> None:
    literals = [b"alice"] if b"{5}" in text else []
    c = Cursor(text, [LiteralData(5, data=lit) for lit in literals])
    assert search_program(c).key == expected


@pytest.mark.parametrize(("text", "charset", "options"), [
    (b"ALL", "UTF-8", None),
    (b"CHARSET UTF-8 ALL", "UTF-8", None),
    (b"CHARSET us-ascii ALL", "US-ASCII", None),
    (b'CHARSET "UTF-8" ALL', "UTF-8", None),
    (b"RETURN () ALL", "UTF-8", ()),
    (b"RETURN (MIN MAX COUNT ALL SAVE) ALL", "UTF-8", ("MIN", "MAX", "COUNT", "ALL", "SAVE")),
    (b"RETURN (count) CHARSET UTF-8 ALL", "UTF-8", ("COUNT",)),
])
def test_program(text: bytes, charset: str, options: tuple[str, ...] | None) -> None:
    parsed = program(text)
    assert parsed.charset == charset
    assert parsed.return_options == options


@pytest.mark.parametrize("text", [b"CHARSET ISO-8859-1 ALL", b"CHARSET KOI8-R SUBJECT x",
                                  b'CHARSET "x" ALL'])
def test_bad_charset_is_no_badcharset(text: bytes) -> None:
    with pytest.raises(ParseError) as info:
        program(text)
    assert info.value.status == "NO"
    assert info.value.code == "BADCHARSET (UTF-8 US-ASCII)"


@pytest.mark.parametrize("text", [
    b"", b"FOO", b"SEEN  FLAGGED", b"(SEEN", b"SEEN)", b"()", b"OR SEEN", b"NOT",
    b"FROM", b"BEFORE 32-Jan-2020", b"BEFORE yesterday", b"LARGER x", b"LARGER -1",
    b"KEYWORD \\Seen", b"HEADER a:b x", b"UID", b"0", b"1:0", b"RETURN (FOO) ALL",
    b"RETURN MIN ALL", b"SUBJECT \"\xff\"", b"MODSEQ", b'MODSEQ "/x" all 1',
    b'MODSEQ "/flags/x" some 1', b"SEEN \x00", b"ALL ALL)", b"(" * 200 + b"ALL" + b")" * 200,
    b"NOT " * 200 + b"ALL", b"OR " * 200 + b"ALL " * 201,
])
def test_invalid(text: bytes) -> None:
    with pytest.raises(ParseError) as info:
        program(text)
    assert info.value.status == "BAD"


# -- evaluation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Msg:
    """A real message view: headers parsed by hand, for the evaluator's tests."""

    uid: int
    seq: int
    flags: frozenset[str]
    internal_date: float
    size: int
    modseq: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""

    def header(self, name: str) -> Sequence[str]:
        return self.headers.get(name.lower(), [])

    def headers_text(self) -> str:
        return "".join(f"{k}: {v}\r\n" for k, vs in self.headers.items() for v in vs)

    def body_text(self) -> str:
        return self.body


def _ts(year: int, month: int, day: int, hour: int = 12) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


MAILBOX = [
    Msg(10, 1, frozenset({"\\Seen"}), _ts(2024, 1, 31, 23), 500, 5,
        {"from": ["Alice <alice@example.org>"], "subject": ["Grüße aus Köln"],
         "date": ["Wed, 31 Jan 2024 23:30:00 -0800"]}, "Hello World"),
    Msg(11, 2, frozenset({"\\Flagged", "$Junk", "\\Recent"}), _ts(2024, 2, 1), 1500, 9,
        {"from": ["bob@example.org"], "to": ["alice@example.org"], "x-spam": ["yes"],
         "date": ["1 Feb 2024 01:00:00 +1400"]}, "STRASSE"),
    Msg(15, 3, frozenset({"\\Deleted", "\\Answered"}), _ts(2024, 2, 2), 1000, 2,
        {"subject": ["re: plans"]}, ""),
]
CTX = SearchContext(highest_seq=3, highest_uid=15, saved=NumberSet.from_values([11, 15]))

EVAL: list[tuple[bytes, list[int]]] = [
    (b"ALL", [10, 11, 15]),
    (b"SEEN", [10]),
    (b"UNSEEN", [11, 15]),
    (b"NEW", [11]),
    (b"OLD", [10, 15]),
    (b"FLAGGED", [11]),
    (b"ANSWERED DELETED", [15]),
    (b"KEYWORD $junk", [11]),
    (b"UNKEYWORD $Junk", [10, 15]),
    (b"FROM ALICE", [10]),
    (b"FROM example.org", [10, 11]),
    ('SUBJECT "GRÜSSE"'.encode(), [10]),
    (b'SUBJECT "gr\xc3\xbc\xc3\x9fe"', [10]),
    (b"BODY strasse", [11]),
    (b'BODY "stra\xc3\x9fe"', [11]),           # casefold: ß → ss
    (b"TEXT x-spam", [11]),
    (b"TEXT world", [10]),
    (b'HEADER X-Spam ""', [11]),
    (b"HEADER x-spam no", []),
    (b"LARGER 999", [11, 15]),
    (b"SMALLER 1000", [10]),
    (b"ON 1-Feb-2024", [11]),
    (b"ON 31-Jan-2024", [10]),
    (b"BEFORE 1-Feb-2024", [10]),
    (b"SINCE 1-Feb-2024", [11, 15]),
    (b"SENTON 31-Jan-2024", [10]),              # the Date: header's day, zone disregarded
    (b"SENTON 1-Feb-2024", [11]),
    (b"SENTBEFORE 1-Feb-2024", [10]),
    (b"SENTSINCE 1-Jan-2000", [10, 11]),        # no Date: header, no match
    (b"1", [10]),
    (b"2:*", [11, 15]),
    (b"*", [15]),
    (b"UID 11:*", [11, 15]),
    (b"UID 12:14", []),
    (b"UID 16:*", [15]),                        # RFC 9051 6.4.8
    (b"$", [11, 15]),
    (b"UID $", [11, 15]),
    (b"MODSEQ 5", [10, 11]),
    (b"NOT SEEN", [11, 15]),
    (b"OR SEEN FLAGGED", [10, 11]),
    (b"OR (SEEN FROM bob) 3", [15]),
]


@pytest.mark.parametrize(("text", "uids"), EVAL, ids=[e[0].decode("latin-1") for e in EVAL])
def test_evaluate(text: bytes, uids: list[int]) -> None:
    found = search(key(text), MAILBOX, CTX)
    assert [m.uid for m in found] == uids
    assert [m.uid for m in MAILBOX if matches(key(text), m, CTX)] == uids


def test_internal_date_in_mailbox_time_zone() -> None:
    berlin = SearchContext(3, 15, tz=dt.timezone(dt.timedelta(hours=1)))
    # 31 Jan 23:00 UTC is 1 Feb in UTC+1.
    assert [m.uid for m in search(key(b"ON 1-Feb-2024"), MAILBOX, berlin)] == [10, 11]


def test_saved_absent_is_empty() -> None:
    ctx = SearchContext(3, 15)
    assert search(key(b"$"), MAILBOX, ctx) == []


@pytest.mark.parametrize(("numbers", "options", "expected"), [
    ([2, 3, 4, 9], ("MIN", "MAX", "COUNT"), [("MIN", "2"), ("MAX", "9"), ("COUNT", "4")]),
    ([2, 3, 4, 9], (), [("ALL", "2:4,9")]),
    ([2, 3, 4, 9], ("ALL",), [("ALL", "2:4,9")]),
    ([], ("MIN", "MAX", "ALL", "COUNT"), [("COUNT", "0")]),
    ([5], ("SAVE",), []),
    ([5], ("SAVE", "COUNT"), [("COUNT", "1")]),
])
def test_esearch_data(numbers: list[int], options: tuple[str, ...],
                      expected: list[tuple[str, str]]) -> None:
    assert esearch_data(numbers, options) == expected


@pytest.mark.parametrize(("options", "expected"), [
    (("SAVE",), "2:4,9"),
    (("SAVE", "MIN"), "2"),
    (("SAVE", "MAX"), "9"),
    (("SAVE", "MIN", "MAX"), "2,9"),
    (("SAVE", "MIN", "COUNT"), "2:4,9"),
])
def test_saved_result(options: tuple[str, ...], expected: str) -> None:
    assert str(saved_result([2, 3, 4, 9], options)) == expected
