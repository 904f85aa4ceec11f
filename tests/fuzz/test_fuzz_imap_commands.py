"""Fuzz the command parsers: structured and random command streams, through the receiver and
`parse_command` in every state, give a typed command or a `CommandError` whose reply is one
well-formed tagged line, never another exception; generated valid SEARCH and FETCH
arguments parse to what they say."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap.commands import CommandError, ImapCommand, ParseContext, parse_command
from appliance.imap.commands.mailboxes import Append
from appliance.imap.commands.messages import Fetch, Search
from appliance.imap.fetch_items import FetchKind
from appliance.imap.literals import LiteralData
from appliance.imap.receiver import NEED_DATA, Command, Receiver, ReceiverError, ReceiverLimits
from appliance.imap.state import COMMANDS, State

NAMES = sorted({name.split()[-1] for name in COMMANDS} | {"UID", "DONE", "XYZZY"})
ATOMS = st.sampled_from([
    "INBOX", "inbox", "x", "1", "1:*", "*", "$", "2,4:6", "0", "4294967296", "NIL", "ALL",
    "FLAGS", "UID", "BODY[]", "BODY.PEEK[HEADER.FIELDS (A B)]", "BODY[1.2.MIME]<0.10>",
    "BINARY[1]", "\\Seen", "\\seen", "$Junk", "+FLAGS.SILENT", "-FLAGS", "CHANGEDSINCE",
    "VANISHED", "UNCHANGEDSINCE", "CONDSTORE", "QRESYNC", "RETURN", "CHARSET", "UTF-8",
    "KOI8-R", "OR", "NOT", "FROM", "SINCE", "1-Feb-2024", '"1-Feb-2024 10:00:00 +0100"',
    "HEADER", "MODSEQ", "USE", "\\Junk", "SUBSCRIBED", "RECURSIVEMATCH", "STATUS",
    "MESSAGES", "SIZE", "STORAGE", "PLAIN", "=", "AGFsaWNlAHB3", "&APw-", "&Jjo", "%",
    '""', '"a b"', '"\\"', '"\\\\"', "UTF8", "~{3+}\r\nabc", "{2+}\r\nhi", "{0+}\r\n",
    "\xff", "\x00", "é", "(", ")", "()", "[", "]", "<", ">", ".", "\t", "ENVELOPE", "FAST",
    "FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE",
])
ARGS = st.lists(ATOMS, max_size=12).map(lambda parts: " ".join(parts))
STATES = st.sampled_from(list(State))


def check_reply(error: CommandError, tag: str) -> None:
    reply = error.reply()
    assert error.tag == tag
    assert error.status in ("BAD", "NO")
    assert reply.startswith(f"{tag} {error.status} ".encode())
    assert reply.endswith(b"\r\n")
    assert reply.count(b"\r") == 1
    assert reply.count(b"\n") == 1
    assert reply.isascii()


Reply = ImapCommand | CommandError | ReceiverError


def parse_all(wire: bytes, state: State, utf8: bool) -> list[Reply]:
    """One entry per command the client sent: what the session acts on or answers."""
    receiver = Receiver(ReceiverLimits(max_non_sync_literal=None))
    receiver.feed(wire)
    out: list[Reply] = []
    while (event := receiver.next_event()) is not NEED_DATA:
        if isinstance(event, ReceiverError):
            assert event.status in ("BAD", "NO")
            out.append(event)
            continue
        assert isinstance(event, Command)
        try:
            out.append(parse_command(event, state, ParseContext(utf8=utf8)))
        except CommandError as error:
            check_reply(error, event.tag)
            out.append(error)
    return out


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), ARGS), min_size=1, max_size=4), STATES,
       st.booleans())
def test_structured_streams_always_get_a_reply(commands: list[tuple[str, str]], state: State,
                                               utf8: bool) -> None:
    wire = b"".join(f"t{i} {name} {args}\r\n".encode("utf-8", "surrogateescape")
                    for i, (name, args) in enumerate(commands))
    results = parse_all(wire, state, utf8)
    # every command line gets exactly one outcome: a command to run or a reply to send
    assert len(results) == len(commands)
    for result, (name, _) in zip(results, commands, strict=True):
        if isinstance(result, ImapCommand):
            assert name.upper() in {n.split()[0] for n in COMMANDS}


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(COMMANDS)), st.binary(max_size=80),
       st.lists(st.binary(max_size=10), max_size=3), STATES, st.booleans())
def test_random_arguments(name: str, args: bytes, literals: list[bytes], state: State,
                          utf8: bool) -> None:
    first, _, rest = name.partition(" ")
    received = Command("t", first, (rest.encode() + b" " if rest else b"") + args,
                       tuple(LiteralData(len(lit), data=lit) for lit in literals))
    try:
        result = parse_command(received, state, ParseContext(utf8=utf8))
    except CommandError as error:
        check_reply(error, "t")
    else:
        assert result.tag == "t"


# -- generated valid input parses to what it means --------------------------------------------

def _search_keys() -> st.SearchStrategy[str]:
    leaves = st.sampled_from([
        "ALL", "SEEN", "UNSEEN", "NEW", "OLD", "FLAGGED", "DELETED", "DRAFT", "ANSWERED",
        "RECENT", "UNDRAFT", "KEYWORD $Junk", "FROM alice", 'SUBJECT "a b"', "BODY x",
        "TEXT {3+}\r\nabc", "LARGER 10", "SMALLER 5", "SINCE 1-Jan-2020", "SENTON 2-Feb-2021",
        "UID 1:*", "1,2", "$", "MODSEQ 7", 'HEADER X-A ""',
    ])
    return st.recursive(leaves, lambda inner: st.one_of(
        inner.map(lambda k: f"NOT {k}"),
        st.tuples(inner, inner).map(lambda p: f"OR {p[0]} {p[1]}"),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: "(" + " ".join(ks) + ")"),
    ), max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(st.lists(_search_keys(), min_size=1, max_size=3))
def test_generated_search_parses(keys: list[str]) -> None:
    wire = ("t UID SEARCH " + " ".join(keys) + "\r\n").encode()
    (result,) = parse_all(wire, State.SELECTED, False)
    assert isinstance(result, Search), result
    assert result.uid
    hash(result.program)      # parsed values are frozen and hashable (cache keys)


ITEMS = st.sampled_from(["FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY",
                         "BODYSTRUCTURE", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ",
                         "BODY[]", "BODY.PEEK[TEXT]", "BINARY.PEEK[1]<0.5>", "BINARY.SIZE[2]",
                         "BODY[1.2.HEADER.FIELDS.NOT (X Y)]<3.4>", "BODY[3.MIME]"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ITEMS, min_size=1, max_size=8),
       st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)),
                min_size=1, max_size=4))
def test_generated_fetch_parses(items: list[str], ranges: list[tuple[int, int]]) -> None:
    numbers = ",".join(f"{a}:{b}" for a, b in ranges)
    wire = f"t FETCH {numbers} ({' '.join(items)})\r\n".encode()
    (result,) = parse_all(wire, State.SELECTED, False)
    assert isinstance(result, Fetch), result
    assert len(result.attributes) == len(items)
    assert result.sequence_set.ranges == tuple(ranges)
    names = [a.response_name() for a in result.attributes]
    assert all(isinstance(a.kind, FetchKind) for a in result.attributes)
    assert len(names) == len(items)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59))
def test_generated_append_dates(when: dt.datetime, offset_minutes: int) -> None:
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    when = when.replace(microsecond=0, tzinfo=zone)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = when.strftime("%d-%b-%Y %H:%M:%S") + f" {sign}{hours:02d}{minutes:02d}"
    wire = f't APPEND INBOX "{text}" {{1+}}\r\nx\r\n'.encode()
    (result,) = parse_all(wire, State.AUTHENTICATED, False)
    assert isinstance(result, Append), result
    assert result.messages[0].internal_date == when
