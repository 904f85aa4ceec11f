"""Our MIME answers (ENVELOPE, BODY, BODYSTRUCTURE, BODY[section], BINARY) against Dovecot's.

Every message of tests/data/mime/ (plus two generated deep-nesting ones) goes into a
Maildir served by a private Dovecot (tests/peers/dovecot.py); we FETCH over imaplib, keep
the raw response bytes, parse them and our `wire.render` output with one IMAP value parser
(so quoted-vs-literal choices do not matter, the values do) and compare item by item.

Where we differ on purpose, `ALLOWED` says so for exactly one (message, item) with the
reason; an entry that no longer differs fails the test, so the list stays honest.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import poplib
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.imap import wire
from appliance.imap.bodystructure import bodystructure
from appliance.imap.envelope import envelope
from appliance.imap.mime import MESSAGE, MULTIPART, Part, parse_message
from appliance.imap.mime_render import render
from appliance.imap.sections import (
    HEADER,
    HEADER_FIELDS,
    HEADER_FIELDS_NOT,
    MIME,
    TEXT,
    Section,
    SectionError,
    binary,
    partial,
    section_bytes,
)
from peers.dovecot import DovecotInstance

CORPUS = Path(__file__).resolve().parent.parent / "data" / "mime"
USER, PASSWORD = "oracle", "oracle-pw"

# (message, item) -> why we answer differently from Dovecot.
_NON_MIME_CTE = ("Dovecot's BINARY applies the Content-Transfer-Encoding of a message without "
                 "MIME-Version or Content-Type although its BODYSTRUCTURE says 7bit; we follow "
                 "RFC 2045 4 (not MIME) and stay consistent with BODYSTRUCTURE")
_WHOLE_MESSAGE_SIZE = ("Dovecot computes BINARY.SIZE for all parts at once, so one part with an "
                       "unknown encoding fails them all; RFC 3516 4.2 is per part")
_LAST_CTE = ("Dovecot's BINARY decodes with the last Content-Transfer-Encoding field while "
             "its BODYSTRUCTURE shows the first; we use the first for both")
_LENIENT_BASE64 = ("Dovecot drops the connection (internal error) on base64 with missing "
                   "padding or stray characters; RFC 2045 6.8 says to ignore characters "
                   "outside the alphabet, and we decode what is there")
_LENIENT_QP = ("Dovecot refuses quoted-printable with an invalid '=ZZ'; RFC 2045 6.7 note (1) "
               "suggests keeping such a sequence as it is, which we do")
ALLOWED: dict[tuple[str, str], str] = {
    ("02_no_content_type", "BINARY[1]"): _NON_MIME_CTE,
    ("02_no_content_type", "BINARY.SIZE[1]"): _NON_MIME_CTE,
    ("02_no_content_type", "BINARY[]"): _NON_MIME_CTE,
    ("02_no_content_type", "BINARY.SIZE[]"): _NON_MIME_CTE,
    ("09_bad_cte", "BINARY.SIZE[3]"): _WHOLE_MESSAGE_SIZE,
    ("09_bad_cte", "BINARY.SIZE[4]"): _WHOLE_MESSAGE_SIZE,
    ("18_duplicate_headers", "BINARY[1]"): _LAST_CTE,
    ("18_duplicate_headers", "BINARY.SIZE[1]"): _LAST_CTE,
    ("18_duplicate_headers", "BINARY[]"): _LAST_CTE,
    ("18_duplicate_headers", "BINARY.SIZE[]"): _LAST_CTE,
    ("21_base64_bad_padding", "BINARY[1]"): _LENIENT_BASE64,
    ("21_base64_bad_padding", "BINARY.SIZE[1]"): _LENIENT_BASE64,
    ("21_base64_bad_padding", "BINARY[]"): _LENIENT_BASE64,
    ("21_base64_bad_padding", "BINARY.SIZE[]"): _LENIENT_BASE64,
    ("21_base64_bad_padding", "BINARY[2]"): _LENIENT_BASE64,
    ("21_base64_bad_padding", "BINARY.SIZE[2]"): _LENIENT_BASE64,
    ("21_base64_bad_padding", "BINARY.SIZE[3]"): _WHOLE_MESSAGE_SIZE,
    ("25_qp_body", "BINARY[1]"): _LENIENT_QP,
    ("25_qp_body", "BINARY.SIZE[1]"): _LENIENT_QP,
    ("25_qp_body", "BINARY[]"): _LENIENT_QP,
    ("25_qp_body", "BINARY.SIZE[]"): _LENIENT_QP,
}


def to_crlf(data: bytes) -> bytes:
    """What the store hands out: every bare LF becomes CRLF (mailbox_api.py)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def deep_rfc822(levels: int) -> bytes:
    head = b"".join(b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % i
                    for i in range(levels))
    return head + b"Subject: bottom\r\n\r\nbottom text\r\n"


def deep_multipart(levels: int) -> bytes:
    out = b"MIME-Version: 1.0\r\n"
    for i in range(levels):
        out += b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
    out += b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for i in reversed(range(levels)):
        out += b"--b%d--\r\n" % i
    return out


def corpus() -> dict[str, bytes]:
    messages = {path.stem: to_crlf(path.read_bytes()) for path in sorted(CORPUS.glob("*.eml"))}
    messages["gen_deep_rfc822"] = deep_rfc822(120)
    messages["gen_deep_multipart"] = deep_multipart(120)
    return messages


# Differential fuzzing: random messages from lines that drive the parser's decisions.
RANDOM_LINES = [
    b"--a", b"--ab", b"--a--", b"--ab--", b"--", b"", b"", b"", b" folded", b"\tfolded",
    b"Content-Type: multipart/mixed; boundary=a", b"Content-Type: multipart/mixed; boundary=ab",
    b'Content-Type: multipart/digest; boundary="a"', b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset*0*=utf-8''%C3; charset*1=x", b"Content-Type: text",
    b"Content-Type: ;;", b"MIME-Version: 1.0", b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: x-what",
    b"Content-Disposition: attachment; filename*=utf-8''a%20b", b"Content-Language: en, de",
    b"From: A <a@b>, g: c@d, e;", b'To: "q\\" x" <@r:x@y> (c)', b"Subject: =?utf-8?Q?a=C3?=",
    b"aGVsbG8=", b"=3D=ZZ=", b"text", b"no colon", b"(((", b'"unterminated', b"--a \t",
    b'Content-Type: multipart/x; boundary=""', b'Cc: <>, x, "n" y@z', b"Subject:  a  b ",
    b"Content-ID: <x>", b"Content-Description: d", b"Content-Type: image/png; name*=x''y",
    b"From: \xc3\xa9 <x@y>", b"Subject: nul\ttab", b"Message-ID: <a b>", b"In-Reply-To:",
    b'Content-Type: multipart/mixed; boundary="a"; boundary=b',
    b'Content-Type: text/plain; charset="unterminated', b"Reply-To: a@b (c (nested) d)",
    b"To: a@b, @, <@x:y@z>, g:;", b"Content-Type: MESSAGE/RFC822", b"Content-Language: ,en",
    b"Content-Disposition: inline;", b"Content-Location: a", b'Sender: "a" "b" <c@d>',
    b'Bcc: a.b.@c..d, "x"@y', b"Date: Mon, 1 Jan 2026", b"Content-MD5: xyz==",
    b"Content-Type: text/plain; title*0*=us-ascii'en'a%20; title*1=b%; title*2*=%41",
    b'Content-Type: text/plain (c); format=flowed; CHARSET="UTF-8"',
    b"Content-Type: application/x; a=b; a=c",
    b'Content-Disposition: attachment; filename="a b.txt"; size=12',
    b"Content-Type: text/html; charset=utf-8 (comment)", b"To: Undisclosed:;, x@y",
    b"From: =?utf-8?q?x?= <a@b>", b'Cc: "a\\\\b" <c@d>', b"Reply-To: <a@b>, <c@d",
    b'Content-Location: "quoted"', b'Content-Type: multipart/alternative; boundary="a" (x)',
    b"Subject: " + b"w " * 300, b"X-Long: " + b"y" * 3000, b"Content-Type: message/rfc822; x=y",
    b"Sender: a@b, c@d", b"To: a@b c@d", b"Cc: <a@b> x", b"Bcc: (only comment)",
    b'To: ""@b', b"From: a@", b"From: @b", b"Content-Type: text/plain; name==?utf-8?B?YQ==?=",
    b"Content-Type: text/plain; charset=us-ascii; charset=utf-8", b"To: a@b (c) (d)",
    b"From: A B <a@b> (comment)", b'To: "" <a@b>', b"Cc: a@b.", b"To: <a@b>,", b"To: ,,a@b",
]

# Address headers broken in every way we could think of; each becomes "To: <it>".
ADDRESS_PROBES = [
    b"<a@b>, <c@d", b",,a@b", b"a@b,,c@d", b"<a@b>,", b"a@b,", b'"" <a@b>', b'""@b', b"a@b.",
    b"a@.b", b"a@b..c", b"a@[1.2.3.4]", b"a@[1.2", b"<a@b", b"<a@b> x", b"a@b c@d",
    b"a (comment", b"a@b (c) (d)", b"(c) a@b (d)", b"Name <a@b> (c)", b"Name (c) <a@b>",
    b'"a" "b" <c@d>', b'"a"."b"@c', b'"a".b@c', b'a."b"@c', b".a@b", b"<>", b"<@>", b"<@a:>",
    b"<@a,@b:c@d>", b"<@a:@b:c@d>", b"g:a@b;", b"g:a@b", b"g:;;", b"g: a@b, ; x@y",
    b"g: <a@b> ; h: c@d;", b": a@b;", b"a@b;", b"=?utf-8?q?x?= <a@b>", b'"a\\"b" <c@d>',
    b"a\\b@c", b"a@b\\c", b"<a@b>>", b"<<a@b>", b"Mr. Smith <a@b>", b"Mr . Smith <a@b>",
    b" ", b"@", b"@@", b"a@@b", b"a b", b'"a b"', b'x@y "tail"', b"a. b@c", b"a .b@c",
    b"a@b .c", b"a@b. c", b"a@b . c", b"a . b@c", b"a.b@c.d", b'"x". y@z',
]


def address_messages() -> dict[str, bytes]:
    return {f"address_{index:02d}": b"To: " + probe + b"\r\n\r\nx"
            for index, probe in enumerate(ADDRESS_PROBES)}


def random_messages(seed: int = 2026, count: int = 300) -> dict[str, bytes]:
    rnd = random.Random(seed)
    out: dict[str, bytes] = {}
    for index in range(count):
        data = b"".join(rnd.choice(RANDOM_LINES) + b"\r\n" for _ in range(rnd.randint(0, 40)))
        if rnd.random() < 0.3:
            data = data[:-2]
        if data and data not in out.values():   # (the corpus has the empty message)
            out[f"random_{index:03d}"] = data
    return out


# -- an IMAP value parser for both sides ---------------------------------------------------

class Atom(str):
    """An atom in a parsed response (kept apart from strings)."""


def parse_value(buf: bytes, pos: int) -> tuple[Any, int]:
    while buf[pos:pos + 1] == b" ":
        pos += 1
    char = buf[pos:pos + 1]
    if char == b"(":
        items: list[Any] = []
        pos += 1
        while True:
            while buf[pos:pos + 1] == b" ":
                pos += 1
            if buf[pos:pos + 1] == b")":
                return items, pos + 1
            item, pos = parse_value(buf, pos)
            items.append(item)
    if char == b'"':
        out = bytearray()
        pos += 1
        while buf[pos:pos + 1] != b'"':
            if buf[pos:pos + 1] == b"\\":
                pos += 1
            out += buf[pos:pos + 1]
            pos += 1
        return bytes(out), pos + 1
    if char in (b"{", b"~"):
        start = buf.index(b"{", pos) + 1
        end = buf.index(b"}\r\n", start)
        size = int(buf[start:end])
        return buf[end + 3:end + 3 + size], end + 3 + size
    start = pos
    depth = 0
    while pos < len(buf):
        byte = buf[pos:pos + 1]
        if byte == b"[":
            depth += 1
        elif byte == b"]":
            depth -= 1
        elif depth == 0 and byte in (b" ", b")"):
            break
        pos += 1
    text = buf[start:pos].decode()
    if text == "NIL":
        return None, pos
    if text.isdigit():
        return int(text), pos
    return Atom(text), pos


def parse_fetch(raw: bytes) -> dict[str, Any]:
    """`N FETCH (name value ...)` → {name: value}."""
    start = raw.index(b"(")
    items, _ = parse_value(raw, start)
    return {str(items[i]).upper(): items[i + 1] for i in range(0, len(items), 2)}


def segments(raw: bytes) -> dict[str, bytes]:
    """The raw bytes of each item's value in `N FETCH (name value ...)`."""
    pos = raw.index(b"(") + 1
    out: dict[str, bytes] = {}
    while raw[pos:pos + 1] not in (b")", b""):
        name, pos = parse_value(raw, pos)
        start = pos + 1
        _, pos = parse_value(raw, pos)
        out[str(name).upper()] = raw[start:pos]
        while raw[pos:pos + 1] == b" ":
            pos += 1
    return out


def skeleton(raw: bytes) -> bytes:
    """`raw` with every string (quoted or literal) replaced by S: what is left is the list
    structure and its exact spacing, which must match whatever the quoting choices."""
    out = bytearray()
    pos = 0
    while pos < len(raw):
        char = raw[pos:pos + 1]
        if char in (b'"', b"{", b"~"):
            _, pos = parse_value(raw, pos)
            out += b"S"
        else:
            out += char
            pos += 1
    return bytes(out)


def ours(value: wire.Value) -> Any:
    rendered = render(value)
    return parse_value(rendered, 0)[0]


# -- talking to Dovecot ----------------------------------------------------------------------

def raw_fetch(conn: imaplib.IMAP4, uid: int, items: str) -> tuple[str, bytes]:
    conn.untagged_responses.clear()   # a failed FETCH leaves its "N (UID n)" behind
    typ, data = conn.uid("FETCH", str(uid), items)
    raw = b""
    for piece in data:
        if isinstance(piece, tuple):
            raw += piece[0] + b"\r\n" + piece[1]
        elif piece is not None:
            raw += piece
    return typ, raw


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DovecotInstance, dict[str, int], dict[str, bytes]]]:
    """One Dovecot serving the corpus; the UID of each message; the messages."""
    messages = {**corpus(), **random_messages(), **address_messages()}
    work = Path(tempfile.mkdtemp(prefix="mime-oracle-"))
    maildir = work / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for index, data in enumerate(messages.values()):
        (maildir / "cur" / f"{1000000 + index}.M{index}P1.oracle:2,").write_bytes(data)
    instance = DovecotInstance(work / "dovecot")
    try:
        instance.start()
        instance.add_user(USER, PASSWORD, maildir)
        with connect(instance) as conn:
            uids = map_uids(conn, messages)
        yield instance, uids, messages
    finally:
        instance.stop()
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def connect(instance: DovecotInstance) -> Iterator[imaplib.IMAP4]:
    conn = imaplib.IMAP4("127.0.0.1", instance.imap_port)
    try:
        conn.login(USER, PASSWORD)
        conn.select("INBOX", readonly=True)
        yield conn
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()


@pytest.fixture
def dovecot(served: Any) -> Iterator[tuple[imaplib.IMAP4, dict[str, int], dict[str, bytes]]]:
    instance, uids, messages = served
    with connect(instance) as conn:
        yield conn, uids, messages


def map_uids(conn: imaplib.IMAP4, messages: dict[str, bytes]) -> dict[str, int]:
    by_content = {data: name for name, data in messages.items()}
    typ, data = conn.uid("SEARCH", "ALL")
    assert typ == "OK"
    uids: dict[str, int] = {}
    for uid in (int(x) for x in data[0].split()):
        _, raw = raw_fetch(conn, uid, "(BODY.PEEK[])")
        body = parse_fetch(raw)["BODY[]"]
        uids[by_content[body]] = uid
    assert set(uids) == set(messages), "Dovecot changed a message's bytes"
    return uids


# -- what to compare --------------------------------------------------------------------------

def part_paths(root: Part) -> Iterator[tuple[tuple[int, ...], Part]]:
    """Every part number of the message and its part (RFC 9051 6.4.5)."""

    def walk(part: Part, path: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Part]]:
        if part.kind == MULTIPART:
            for index, child in enumerate(part.children):
                yield (*path, index + 1), child
                yield from walk(child, (*path, index + 1))
        elif part.kind == MESSAGE and part.children:
            inner = part.children[0]
            if inner.kind == MULTIPART:
                yield from walk(inner, path)
            else:
                yield (*path, 1), inner
                yield from walk(inner, (*path, 1))

    if root.kind == MULTIPART:
        yield from walk(root, ())
    else:
        yield (1,), root
        yield from walk(root, (1,))


def section_items(root: Part) -> list[tuple[str, Section]]:
    items = [("BODY[HEADER]", Section((), HEADER)), ("BODY[TEXT]", Section((), TEXT)),
             ("BODY[]", Section()),
             ("BODY[HEADER.FIELDS (FROM SUBJECT X-NOTHING)]",
              Section((), HEADER_FIELDS, (b"FROM", b"SUBJECT", b"X-NOTHING"))),
             ("BODY[HEADER.FIELDS.NOT (FROM SUBJECT)]",
              Section((), HEADER_FIELDS_NOT, (b"FROM", b"SUBJECT")))]
    # numbers past the tree: Dovecot's rules for leaves, missing parts and HEADER on a leaf
    probes: list[tuple[tuple[int, ...], str | None]] = [
        ((1,), None), ((1,), MIME), ((1, 1), None), ((1, 1, 1), None), ((1, 2), None),
        ((9,), None), ((1,), HEADER),
        ((1,), TEXT), ((2, 1, 1), None)]
    for numbers, text in probes:
        items.append((f"BODY[{'.'.join(map(str, numbers))}{'.' + text if text else ''}]",
                      Section(numbers, text)))
    for path, part in list(part_paths(root))[:40]:
        dotted = ".".join(map(str, path))
        items.append((f"BODY[{dotted}]", Section(path)))
        items.append((f"BODY[{dotted}.MIME]", Section(path, MIME)))
        if part.kind == MESSAGE:
            items.append((f"BODY[{dotted}.HEADER]", Section(path, HEADER)))
            items.append((f"BODY[{dotted}.TEXT]", Section(path, TEXT)))
    return items


class Differences:
    def __init__(self, name: str) -> None:
        self.name = name
        self.found: list[str] = []
        self.stale: list[str] = []

    def check(self, item: str, theirs: Any, mine: Any) -> None:
        allowed = (self.name, item) in ALLOWED
        if theirs != mine and not allowed:
            self.found.append(f"{item}:\n  dovecot: {theirs!r}\n  ours:    {mine!r}")
        elif theirs == mine and allowed:
            self.stale.append(item)

    def assert_none(self) -> None:
        assert not self.found, f"{self.name}: " + "\n".join(self.found)
        assert not self.stale, f"{self.name}: allow-list entries that now agree: {self.stale}"


NAMES = sorted(corpus())


@pytest.mark.parametrize("name", NAMES)
def test_structure_matches_dovecot(dovecot: Any, name: str) -> None:
    conn, uids, messages = dovecot
    data = messages[name]
    typ, raw = raw_fetch(conn, uids[name], "(ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE)")
    assert typ == "OK"
    theirs = parse_fetch(raw)
    raw_items = segments(raw)
    diff = Differences(name)
    assert theirs["RFC822.SIZE"] == len(data)
    for item, value in (("ENVELOPE", envelope(data)), ("BODYSTRUCTURE", bodystructure(data)),
                        ("BODY", bodystructure(data, extended=False))):
        diff.check(item, theirs[item], ours(value))
        diff.check(f"{item} spacing", skeleton(raw_items[item]), skeleton(render(value)))
    diff.assert_none()


@pytest.mark.parametrize("name", NAMES)
def test_sections_match_dovecot(dovecot: Any, name: str) -> None:
    conn, uids, messages = dovecot
    data = messages[name]
    root = parse_message(data)
    items = section_items(root)
    request = " ".join(item.replace("BODY[", "BODY.PEEK[") for item in dict(items))
    typ, raw = raw_fetch(conn, uids[name], f"({request} BODY.PEEK[]<3.7>)")
    assert typ == "OK"
    theirs = parse_fetch(raw)
    diff = Differences(name)
    for item, section in dict(items).items():
        mine = section_bytes(root, section)
        if mine is None:
            mine = b""   # RFC 9051 6.4.5: a part that does not exist reads as empty
        diff.check(item, theirs.get(item.upper(), "<missing>"), mine)
    diff.check("BODY[]<3>", theirs.get("BODY[]<3>"), partial(data, 3, 7))
    diff.assert_none()


def fetch_one(instance: DovecotInstance, uid: int, item: str, key: str) -> Any:
    """One FETCH item from Dovecot on a fresh connection (a failed BINARY may cost the
    connection): its value, "NO [CODE]" when refused, "BYE" when Dovecot hung up."""
    with connect(instance) as conn:
        try:
            typ, raw = raw_fetch(conn, uid, f"({item})")
        except imaplib.IMAP4.abort:
            return "BYE"
    if typ != "OK":
        text = raw.decode("latin-1")
        return f"NO [{text.split('[', 1)[1].split(']')[0]}]" if "[" in text else text
    return parse_fetch(raw).get(key)


@pytest.mark.parametrize("name", NAMES)
def test_binary_matches_dovecot(served: Any, name: str) -> None:
    instance, uids, messages = served
    root = parse_message(messages[name])
    diff = Differences(name)
    for path, _ in [((), root), *list(part_paths(root))[:40]]:
        dotted = ".".join(map(str, path))
        try:
            mine: Any = binary(root, path)
            mine_size: Any = len(mine) if mine is not None else None
        except SectionError as err:
            mine = mine_size = f"NO [{err.code}]"
        theirs = fetch_one(instance, uids[name], f"BINARY.PEEK[{dotted}]", f"BINARY[{dotted}]")
        diff.check(f"BINARY[{dotted}]", theirs, mine)
        theirs = fetch_one(instance, uids[name], f"BINARY.SIZE[{dotted}]",
                           f"BINARY.SIZE[{dotted}]")
        diff.check(f"BINARY.SIZE[{dotted}]", theirs, mine_size)
    diff.assert_none()


RANDOM_SECTIONS = [("BODY[1]", Section((1,))), ("BODY[2.MIME]", Section((2,), MIME)),
                   ("BODY[1.1]", Section((1, 1))), ("BODY[TEXT]", Section((), TEXT)),
                   ("BODY[2.1.HEADER]", Section((2, 1), HEADER)),
                   ("BODY[HEADER.FIELDS.NOT (SUBJECT)]",
                    Section((), HEADER_FIELDS_NOT, (b"SUBJECT",)))]


def test_random_messages_match_dovecot(dovecot: Any) -> None:
    """Seeded random messages: every structure and a few sections exactly as Dovecot's
    (no allow-list here: a difference is a bug on one side to look at)."""
    conn, uids, _ = dovecot
    items = " ".join(item.replace("BODY[", "BODY.PEEK[") for item, _ in RANDOM_SECTIONS)
    found: list[str] = []
    for name, data in random_messages().items():
        typ, raw = raw_fetch(conn, uids[name], f"(ENVELOPE BODYSTRUCTURE BODY {items})")
        assert typ == "OK"
        theirs = parse_fetch(raw)
        root = parse_message(data)
        mine: dict[str, Any] = {
            "ENVELOPE": ours(envelope(data)), "BODYSTRUCTURE": ours(bodystructure(data)),
            "BODY": ours(bodystructure(data, extended=False))}
        for item, section in RANDOM_SECTIONS:
            mine[item] = section_bytes(root, section) or b""
        found += [f"{name} {item}: {data!r}\n  dovecot: {theirs.get(item)!r}\n  ours: {value!r}"
                  for item, value in mine.items() if theirs.get(item) != value]
    assert not found, "\n".join(found[:5]) + f"\n({len(found)} differences)"


def test_dovecot_peer_serves_pop3_and_stops_cleanly() -> None:
    """The peer itself: a second instance beside the module's, POP3 sees the Maildir,
    stop() leaves no process behind."""
    maildir = Path(tempfile.mkdtemp(prefix="dovecot-peer-")) / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1.M1P1.peer:2,").write_bytes(b"Subject: one\r\n\r\nbody\r\n")
    with DovecotInstance() as instance:
        instance.add_user("pop", "pop-pw", maildir)
        pop = poplib.POP3("127.0.0.1", instance.pop3_port, timeout=10)
        pop.user("pop")
        pop.pass_("pop-pw")
        assert pop.stat() == (1, len(b"Subject: one\r\n\r\nbody\r\n"))
        pop.quit()
        assert instance.proc is not None
        pid = instance.proc.pid
    assert instance.proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not instance.workdir.exists()   # its own temp dir is removed
    shutil.rmtree(maildir.parent, ignore_errors=True)


def test_address_lists_match_dovecot(dovecot: Any) -> None:
    """ENVELOPE of every address probe exactly as Dovecot's."""
    conn, uids, _ = dovecot
    found: list[str] = []
    for name, data in address_messages().items():
        typ, raw = raw_fetch(conn, uids[name], "(ENVELOPE)")
        assert typ == "OK"
        theirs = parse_fetch(raw)["ENVELOPE"]
        mine = ours(envelope(data))
        if theirs != mine:
            found.append(f"{data!r}\n  dovecot: {theirs[5]!r}\n  ours:    {mine[5]!r}")
    assert not found, "\n".join(found)
