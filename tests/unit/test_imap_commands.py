"""Command argument parsers and the state table: every command from wire text to its typed
dataclass, malformed arguments to a BAD (or NO with a code), and the state checks."""

from __future__ import annotations

import datetime as dt

import pytest

from appliance.imap.commands import CommandError, ImapCommand, ParseContext, parse_command
from appliance.imap.commands import any_state as a
from appliance.imap.commands import mailboxes as m
from appliance.imap.commands import messages as s
from appliance.imap.fetch_items import MACROS, FetchAttribute, FetchKind, FetchModifiers, Section
from appliance.imap.receiver import NEED_DATA, Command, Receiver, ReceiverLimits
from appliance.imap.search_keys import FlagKey, HeaderKey, SearchProgram, TextKey
from appliance.imap.sequence_set import STAR, SequenceSet, parse_sequence_set
from appliance.imap.state import COMMANDS, State, allowed
from appliance.storage.mailbox_api import FlagOperation

SEL = State.SELECTED
AUTH = State.AUTHENTICATED
NOAUTH = State.NOT_AUTHENTICATED


def received(wire: bytes) -> Command:
    receiver = Receiver(ReceiverLimits(max_non_sync_literal=None))
    receiver.feed(wire)
    events = []
    while (event := receiver.next_event()) is not NEED_DATA:
        events.append(event)
    commands = [e for e in events if isinstance(e, Command)]
    assert len(commands) == 1, events
    return commands[0]


def parse(wire: bytes, state: State = SEL, utf8: bool = False) -> ImapCommand:
    return parse_command(received(wire + b"\r\n"), state, ParseContext(utf8=utf8))


def seqs(text: str) -> SequenceSet:
    return parse_sequence_set(text)


TZ = dt.timezone(dt.timedelta(hours=-8))
VALID: list[tuple[bytes, State, ImapCommand]] = [
    (b"t CAPABILITY", NOAUTH, a.Capability("t")),
    (b"t NOOP", SEL, a.Noop("t")),
    (b"t LOGOUT", AUTH, a.Logout("t")),
    (b"t STARTTLS", NOAUTH, a.StartTls("t")),
    (b"t AUTHENTICATE PLAIN", NOAUTH, a.Authenticate("t", "PLAIN")),
    (b"t AUTHENTICATE plain =", NOAUTH, a.Authenticate("t", "PLAIN", b"")),
    (b"t AUTHENTICATE PLAIN AGFsaWNlAHB3", NOAUTH,
     a.Authenticate("t", "PLAIN", b"\x00alice\x00pw")),
    (b"t LOGIN alice secret", NOAUTH, a.Login("t", "alice", "secret")),
    (b't LOGIN "al ice" {6+}\r\nse"cr\\', NOAUTH, a.Login("t", "al ice", 'se"cr\\')),
    (b't LOGIN "j\xc3\xbcrgen" "p\xc3\xa4ss"', NOAUTH, a.Login("t", "jürgen", "päss")),
    (b"t ENABLE CONDSTORE utf8=accept CONDSTORE", AUTH,
     a.Enable("t", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"t ID NIL", NOAUTH, a.Id("t", None)),
    (b't ID ("name" "Thunderbird" "version" NIL)', SEL,
     a.Id("t", (("name", "Thunderbird"), ("version", None)))),
    (b"t ID ()", AUTH, a.Id("t", ())),
    (b"t IDLE", SEL, a.Idle("t")),
    (b"t SELECT inbox", AUTH, m.Select("t", "INBOX")),
    (b"t EXAMINE Archive/2024", SEL, m.Select("t", "Archive/2024", readonly=True)),
    (b"t SELECT INBOX (CONDSTORE)", AUTH, m.Select("t", "INBOX", condstore=True)),
    (b"t SELECT x (QRESYNC (67890007 20050715194045000 41,43:211,214:541))", AUTH,
     m.Select("t", "x", qresync=m.QResync(67890007, 20050715194045000,
                                            seqs("41,43:211,214:541")))),
    (b"t SELECT x (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
     b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))", AUTH,
     m.Select("t", "x", qresync=m.QResync(
         67890007, 90060115194045000, seqs("1:29997"), seqs("5000,7500,9000,9990:9999"),
         seqs("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,"
              "29997")))),
    (b"t SELECT x (QRESYNC (1 2))", AUTH, m.Select("t", "x", qresync=m.QResync(1, 2))),
    (b"t SELECT x (CONDSTORE QRESYNC (1 2 (1 5)))", AUTH,
     m.Select("t", "x", condstore=True, qresync=m.QResync(1, 2, None, seqs("1"), seqs("5")))),
    (b"t CREATE Projects/New", AUTH, m.Create("t", "Projects/New")),
    (b"t CREATE Spam (USE (\\junk))", AUTH, m.Create("t", "Spam", ("\\Junk",))),
    (b"t CREATE &ZeVnLIqe-", AUTH, m.Create("t", "日本語")),
    (b"t DELETE Old", SEL, m.Delete("t", "Old")),
    (b"t RENAME a b", AUTH, m.Rename("t", "a", "b")),
    (b"t RENAME INBOX \"Old Mail\"", AUTH, m.Rename("t", "INBOX", "Old Mail")),
    (b"t SUBSCRIBE x", AUTH, m.Subscribe("t", "x")),
    (b"t UNSUBSCRIBE x", AUTH, m.Subscribe("t", "x", subscribe=False)),
    (b't LIST "" *', AUTH, m.ListMailboxes("t", "", ("*",))),
    (b't LIST "" ""', AUTH, m.ListMailboxes("t", "", ("",))),
    (b"t LIST Archive %", AUTH, m.ListMailboxes("t", "Archive", ("%",))),
    (b't LIST (SUBSCRIBED RECURSIVEMATCH) "" (a* "b c") RETURN (CHILDREN)', AUTH,
     m.ListMailboxes("t", "", ("a*", "b c"), ("SUBSCRIBED", "RECURSIVEMATCH"), ("CHILDREN",),
                     extended=True)),
    (b't LIST (SPECIAL-USE) "" *', AUTH,
     m.ListMailboxes("t", "", ("*",), ("SPECIAL-USE",), extended=True)),
    (b't LIST "" % RETURN (SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))', AUTH,
     m.ListMailboxes("t", "", ("%",), (), ("SUBSCRIBED", "SPECIAL-USE", "STATUS"),
                     ("MESSAGES", "UNSEEN", "SIZE"), extended=True)),
    (b't LIST () "" %', AUTH, m.ListMailboxes("t", "", ("%",), extended=True)),
    (b't LIST "" % RETURN ()', AUTH, m.ListMailboxes("t", "", ("%",), extended=True)),
    (b't LSUB "" *', AUTH, m.ListMailboxes("t", "", ("*",), lsub=True)),
    (b"t NAMESPACE", AUTH, m.Namespace("t")),
    (b"t STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ "
     b"APPENDLIMIT)", AUTH, m.Status("t", "INBOX", m.STATUS_ITEMS)),
    (b"t STATUS x (messages messages)", SEL, m.Status("t", "x", ("MESSAGES",))),
    (b"t GETQUOTA \"\"", AUTH, m.GetQuota("t", "")),
    (b"t GETQUOTAROOT INBOX", AUTH, m.GetQuotaRoot("t", "INBOX")),
    (b"t SETQUOTA \"\" (STORAGE 512 MESSAGE 1000)", AUTH,
     m.SetQuota("t", "", (("STORAGE", 512), ("MESSAGE", 1000)))),
    (b"t SETQUOTA x ()", AUTH, m.SetQuota("t", "x", ())),
    (b"t CHECK", SEL, s.Check("t")),
    (b"t CLOSE", SEL, s.Close("t")),
    (b"t UNSELECT", SEL, s.Unselect("t")),
    (b"t EXPUNGE", SEL, s.Expunge("t")),
    (b"t UID EXPUNGE 3000:3002", SEL, s.Expunge("t", seqs("3000:3002"))),
    (b"t SEARCH UNSEEN", SEL, s.Search("t", SearchProgram(FlagKey("\\Seen", False)))),
    (b"t UID SEARCH CHARSET UTF-8 TEXT {6+}\r\nstra\xc3\x9f", SEL,
     s.Search("t", SearchProgram(TextKey("straß", True)), uid=True)),
    (b"t SEARCH RETURN (MIN COUNT) FROM x", SEL,
     s.Search("t", SearchProgram(HeaderKey("FROM", "x"), return_options=("MIN", "COUNT")))),
    (b"t FETCH 1:* FAST", SEL, s.Fetch("t", SequenceSet(((1, STAR),)), MACROS["FAST"])),
    (b"t FETCH 2 (UID BODY.PEEK[1.MIME])", SEL,
     s.Fetch("t", seqs("2"), (FetchAttribute(FetchKind.UID),
                              FetchAttribute(FetchKind.BODY_SECTION, Section((1,), "MIME"),
                                             peek=True)))),
    (b"t FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)", SEL,
     s.Fetch("t", seqs("1:*"), (FetchAttribute(FetchKind.FLAGS),), FetchModifiers(12345))),
    (b"t UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)", SEL,
     s.Fetch("t", seqs("300:500"), (FetchAttribute(FetchKind.FLAGS),),
             FetchModifiers(12345, True), uid=True)),
    (b"t FETCH $ FLAGS", SEL, s.Fetch("t", seqs("$"), (FetchAttribute(FetchKind.FLAGS),))),
    (b"t STORE 1 FLAGS (\\Seen)", SEL,
     s.Store("t", seqs("1"), FlagOperation.REPLACE, ("\\Seen",))),
    (b"t STORE 1:3 +FLAGS.SILENT (\\Deleted $Junk)", SEL,
     s.Store("t", seqs("1:3"), FlagOperation.ADD, ("\\Deleted", "$Junk"), silent=True)),
    (b"t STORE 1 -flags \\seen \\FLAGGED", SEL,
     s.Store("t", seqs("1"), FlagOperation.REMOVE, ("\\Seen", "\\Flagged"))),
    (b"t STORE 1 FLAGS ()", SEL, s.Store("t", seqs("1"), FlagOperation.REPLACE, ())),
    (b"t UID STORE 7,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)", SEL,
     s.Store("t", seqs("7,9"), FlagOperation.ADD, ("\\Deleted",), True, 320162338, uid=True)),
    (b"t COPY 2:4 MEETING", SEL, s.Copy("t", seqs("2:4"), "MEETING")),
    (b"t UID COPY 2:4 Trash", SEL, s.Copy("t", seqs("2:4"), "Trash", uid=True)),
    (b"t MOVE 1 Trash", SEL, s.Copy("t", seqs("1"), "Trash", move=True)),
    (b"t uid move 1 inbox", SEL, s.Copy("t", seqs("1"), "INBOX", move=True, uid=True)),
]


@pytest.mark.parametrize(("wire", "state", "expected"), VALID,
                         ids=[v[0][:40].decode("latin-1") for v in VALID])
def test_valid(wire: bytes, state: State, expected: ImapCommand) -> None:
    assert parse(wire, state) == expected


def test_append_forms() -> None:
    one = parse(b"t APPEND saved-messages (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {11+}\r\n"
                b"Hello Joe\r\n", AUTH)
    assert isinstance(one, m.Append)
    assert one.mailbox == "saved-messages"
    (message,) = one.messages
    assert message.flags == ("\\Seen",)
    assert message.internal_date == dt.datetime(1994, 2, 7, 21, 52, 25, tzinfo=TZ)
    assert message.data.read() == b"Hello Joe\r\n"
    plain = parse(b"t APPEND INBOX {2+}\r\nhi", SEL)
    assert isinstance(plain, m.Append)
    assert plain.messages[0].flags == ()
    assert plain.messages[0].internal_date is None
    multi = parse(b"t APPEND x {1+}\r\na () {1+}\r\nb \" 1-Jan-2020 00:00:00 +0000\" ~{1}\r\n"
                  b"\x00 UTF8 (~{1}\r\nc)", AUTH)
    assert isinstance(multi, m.Append)
    assert [msg.data.read() for msg in multi.messages] == [b"a", b"b", b"\x00", b"c"]
    assert [msg.data.binary for msg in multi.messages] == [False, False, True, True]
    assert [msg.utf8 for msg in multi.messages] == [False, False, False, True]


INVALID: list[tuple[bytes, State]] = [
    (b"t CAPABILITY x", NOAUTH), (b"t NOOP x", SEL), (b"t LOGOUT now", AUTH),
    (b"t STARTTLS x", NOAUTH), (b"t AUTHENTICATE", NOAUTH),
    (b"t AUTHENTICATE PLAIN !!!!", NOAUTH), (b"t AUTHENTICATE PLAIN AGF", NOAUTH),
    (b"t AUTHENTICATE PLAIN a b", NOAUTH),
    (b"t LOGIN alice", NOAUTH), (b"t LOGIN", NOAUTH), (b"t LOGIN a b c", NOAUTH),
    (b"t LOGIN a \"\xff\"", NOAUTH), (b"t LOGIN (a) b", NOAUTH),
    (b"t ENABLE", AUTH), (b"t ID", AUTH), (b"t ID (\"a\")", AUTH), (b"t ID (\"a\" \"b\"", AUTH),
    (b"t ID (" + b" ".join([b'"f" "v"'] * 31) + b")", AUTH),
    (b"t IDLE x", SEL),
    (b"t SELECT", AUTH), (b"t SELECT x (FOO)", AUTH), (b"t SELECT x ()", AUTH),
    (b"t SELECT x (QRESYNC (0 1))", AUTH), (b"t SELECT x (QRESYNC (1 0))", AUTH),
    (b"t SELECT x (QRESYNC (1))", AUTH), (b"t SELECT x (QRESYNC (1 2 (1)))", AUTH),
    (b"t SELECT x (CONDSTORE", AUTH), (b"t SELECT a b", AUTH),
    (b"t CREATE", AUTH), (b"t CREATE x (USE (\\Junk)", AUTH), (b"t CREATE x (FOO (a))", AUTH),
    (b"t DELETE", AUTH), (b"t DELETE a b", AUTH),
    (b"t RENAME a", AUTH), (b"t SUBSCRIBE", AUTH), (b"t UNSUBSCRIBE", AUTH),
    (b"t LIST", AUTH), (b"t LIST \"\"", AUTH), (b"t LIST (RECURSIVEMATCH) \"\" *", AUTH),
    (b"t LIST (FOO) \"\" *", AUTH), (b"t LIST \"\" * RETURN (FOO)", AUTH),
    (b"t LIST \"\" * RETURN (STATUS ())", AUTH), (b"t LIST \"\" * (x)", AUTH),
    (b"t LIST \"\" ()", AUTH), (b"t LSUB \"\"", AUTH),
    (b"t NAMESPACE x", AUTH),
    (b"t STATUS x", AUTH), (b"t STATUS x ()", AUTH), (b"t STATUS x (FOO)", AUTH),
    (b"t STATUS x MESSAGES", AUTH),
    (b"t APPEND x", AUTH), (b"t APPEND x (\\Seen)", AUTH), (b"t APPEND x hello", AUTH),
    (b"t APPEND x \"bad date\" {1+}\r\na", AUTH), (b"t APPEND x UTF8 ({1+}\r\na)", AUTH),
    (b"t APPEND x {1+}\r\na junk", AUTH),
    (b"t GETQUOTAROOT", AUTH), (b"t GETQUOTA", AUTH), (b"t SETQUOTA x (STORAGE)", AUTH),
    (b"t SETQUOTA x", AUTH),
    (b"t CHECK x", SEL), (b"t CLOSE x", SEL), (b"t UNSELECT x", SEL), (b"t EXPUNGE 1", SEL),
    (b"t UID EXPUNGE", SEL), (b"t UID", SEL), (b"t UID FOO 1", SEL), (b"t UID NOOP", SEL),
    (b"t SEARCH", SEL), (b"t SEARCH FOO", SEL),
    (b"t FETCH", SEL), (b"t FETCH 1", SEL), (b"t FETCH 0 FLAGS", SEL),
    (b"t FETCH 1 (FLAGS) (VANISHED CHANGEDSINCE 1)", SEL),
    (b"t FETCH 1 FLAGS UID", SEL), (b"t FETCH 1 (FLAGS", SEL),
    (b"t STORE 1", SEL), (b"t STORE 1 FLAGS", SEL), (b"t STORE 1 *FLAGS (\\Seen)", SEL),
    (b"t STORE 1 (UNCHANGEDSINCE) FLAGS ()", SEL), (b"t STORE 1 FLAGS (\\Seen", SEL),
    (b"t STORE 1 FLAGS.LOUD (a)", SEL),
    (b"t COPY 1", SEL), (b"t COPY x y", SEL), (b"t MOVE 1:2", SEL),
    (b"t FROB", SEL), (b"t SELECT x\x7f", AUTH),
    (b"t FETCH " + b"(" * 100 + b"FLAGS" + b")" * 100, SEL),
]


@pytest.mark.parametrize(("wire", "state"), INVALID,
                         ids=[v[0][:40].decode("latin-1") for v in INVALID])
def test_invalid_is_tagged_bad(wire: bytes, state: State) -> None:
    with pytest.raises(CommandError) as info:
        parse(wire, state)
    error = info.value
    assert (error.tag, error.status) == ("t", "BAD")
    reply = error.reply()
    assert reply.startswith(b"t BAD ")
    assert reply.endswith(b"\r\n")
    assert reply.count(b"\r\n") == 1
    assert reply.isascii()


@pytest.mark.parametrize(("wire", "code"), [
    (b"t SEARCH CHARSET ISO-8859-1 SUBJECT x", "BADCHARSET (UTF-8 US-ASCII)"),
    (b"t CREATE x (USE (\\Important))", "USEATTR"),
])
def test_no_with_code(wire: bytes, code: str) -> None:
    state = SEL if b"SEARCH" in wire else AUTH
    with pytest.raises(CommandError) as info:
        parse(wire, state)
    assert (info.value.status, info.value.code) == ("NO", code)
    assert info.value.reply() == (
        f"t NO [{code}] {info.value.text}\r\n".encode())


@pytest.mark.parametrize(("wire", "state"), [
    (b"t SELECT INBOX", NOAUTH), (b"t FETCH 1 FLAGS", AUTH), (b"t LOGIN a b", AUTH),
    (b"t AUTHENTICATE PLAIN", SEL), (b"t STARTTLS", AUTH), (b"t ENABLE CONDSTORE", SEL),
    (b"t NOOP", State.LOGOUT), (b"t UID FETCH 1 FLAGS", AUTH), (b"t IDLE", NOAUTH),
    (b"t APPEND x {1+}\r\na", NOAUTH),
])
def test_state_checked(wire: bytes, state: State) -> None:
    with pytest.raises(CommandError, match="not allowed"):
        parse(wire, state)


def test_utf8_mailbox_names_after_enable() -> None:
    assert parse('t SELECT "Entwürfe"'.encode(), AUTH, utf8=True) == m.Select("t", "Entwürfe")
    assert parse(b"t SELECT Entw&APw-rfe", AUTH) == m.Select("t", "Entwürfe")
    with pytest.raises(CommandError):
        parse('t SELECT "Entwürfe"'.encode(), AUTH)


def test_state_table() -> None:
    assert "LOGIN" in allowed(NOAUTH)
    assert "SELECT" not in allowed(NOAUTH)
    assert "FETCH" in allowed(SEL)
    assert "FETCH" not in allowed(AUTH)
    assert "ENABLE" in allowed(AUTH)
    assert allowed(State.LOGOUT) == []
    # every authenticated-state command is also valid when a mailbox is selected, but ENABLE
    assert set(allowed(AUTH)) - set(allowed(SEL)) == {"ENABLE"}
    assert all(spec.states for spec in COMMANDS.values())


def test_secrets_stay_out_of_repr() -> None:
    login = parse(b"t LOGIN alice s3cret", NOAUTH)
    assert "s3cret" not in repr(login)
    auth = parse(b"t AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==", NOAUTH)
    assert "s3cret" not in repr(auth)
    assert b"s3cret" not in repr(auth).encode()
    assert "AGFsaWNl" not in repr(auth)


def test_done_and_sasl_cancel() -> None:
    assert a.is_done(b"DONE")
    assert a.is_done(b"done\r\n")
    assert not a.is_done(b"DONE x")
    assert a.is_sasl_cancel(b"*")
    assert not a.is_sasl_cancel(b"*x")
    assert a.sasl_base64(b"AGFsaWNlAHB3") == b"\x00alice\x00pw"
    assert a.sasl_base64(b"") == b""
