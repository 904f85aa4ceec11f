"""The IMAP core (ImapSession) against the real Maildir store, without sockets.

A small driver plays the asyncio server's part: it feeds lines through the real Receiver,
asks the session for a plan and runs it (a LOGIN is accepted as the guard would accept it).
Socket-level behaviour and real clients are in tests/integration/test_imap_*.py.
"""

from __future__ import annotations

import base64
import re
import weakref
from collections.abc import Iterable
from pathlib import Path

import pytest

from appliance.imap.session import ImapConfig
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.stores import MaildirStores
from harness.imap_core import ADDRESS, CONTINUE_LITERAL, CoreWire


class CoreClient:
    """Lines in, the session's answers out, through the harness's driver (which feeds the
    real Receiver and performs the plans as the server does); any LOGIN is accepted."""

    def __init__(self, data_dir: Path, stores: MaildirStores, secure: bool = True) -> None:
        self.wire = CoreWire(stores, secure=secure, config=ImapConfig("mx.example.test", 1_000_000),
                             client_ip="192.0.2.1", any_password=True)
        self.session = self.wire.session
        self.greeting = self._take()

    def send(self, line: str | bytes) -> list[str]:
        self.wire.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self._take().decode("utf-8", "replace").split("\r\n")[:-1]

    def _take(self) -> bytes:
        out = bytes(self.wire.output)
        self.wire.output.clear()
        return out


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, MaildirStores, MaildirStore, Mailbox]:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    account = directory.add_account(ADDRESS, "x")
    mailbox = Mailbox(account.id, ADDRESS, account.maildir)
    return tmp_path, MaildirStores(tmp_path, directory), MaildirStore(tmp_path), mailbox


def deliver(store: MaildirStore, mailbox: Mailbox, subject: str, body: str = "hi") -> None:
    store.deliver(f"From: Bob <bob@example.test>\nTo: {ADDRESS}\nSubject: {subject}\n"
                  f"Message-ID: <{subject.replace(' ', '.')}@example.test>\n\n{body}\n"
                  .encode(), [mailbox])


@pytest.fixture
def client(world: tuple[Path, MaildirStores, MaildirStore, Mailbox]) -> CoreClient:
    data_dir, stores, store, mailbox = world
    for n in range(1, 4):
        deliver(store, mailbox, f"message {n}", f"body number {n}")
    c = CoreClient(data_dir, stores)
    assert c.send("a LOGIN alice@example.test secret")[-1].startswith("a OK")
    return c


def test_login_refused_before_tls(world: tuple[Path, MaildirStores, MaildirStore, Mailbox]
                                  ) -> None:
    data_dir, stores, _store, _mailbox = world
    c = CoreClient(data_dir, stores, secure=False)
    assert b"LOGINDISABLED" in c.greeting
    assert b"STARTTLS" in c.greeting
    assert c.send("a LOGIN alice@example.test x") == [
        "a NO [PRIVACYREQUIRED] Log in only after STARTTLS (or on the TLS port)"]
    assert c.send("b SELECT INBOX")[0].startswith("b BAD")


def test_select_reports_the_mailbox(client: CoreClient) -> None:
    lines = client.send("s SELECT INBOX")
    assert "* 3 EXISTS" in lines
    assert "* 3 RECENT" in lines
    assert "* OK [UNSEEN 1] First unseen" in lines
    assert any(re.fullmatch(r"\* OK \[UIDVALIDITY \d+\] .*", line) for line in lines)
    assert "* OK [UIDNEXT 4] Predicted next UID" in lines
    assert lines[-1] == "s OK [READ-WRITE] SELECT completed"


def test_fetch_store_search_expunge(client: CoreClient) -> None:
    client.send("s SELECT INBOX")
    lines = client.send("f FETCH 1:* (UID FLAGS RFC822.SIZE)")
    assert lines[0].startswith("* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE ")
    assert lines[-1] == "f OK FETCH completed"
    assert client.send("t STORE 2 +FLAGS (\\Deleted \\Seen)") == [
        "* 2 FETCH (FLAGS (\\Deleted \\Seen \\Recent))", "t OK STORE completed"]
    assert client.send("u UID SEARCH DELETED") == ["* SEARCH 2", "u OK SEARCH completed"]
    assert client.send('v SEARCH SUBJECT "message 3"') == ["* SEARCH 3",
                                                           "v OK SEARCH completed"]
    assert client.send("w EXPUNGE") == ["* 2 EXPUNGE", "w OK EXPUNGE completed"]
    assert client.send("x UID FETCH 3 (FLAGS)")[0] == "* 2 FETCH (UID 3 FLAGS (\\Recent))"


def test_search_sees_this_sessions_recent_and_not_held_back_expunges(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox]) -> None:
    """SEARCH's message views (`search_view.views`): \\Recent as this session holds it
    (the first to select has them, the second not), and a message another session
    expunged while this one could not yet be told (held back by a FETCH, RFC 9051 7.5.1)
    matches nothing, before the EXPUNGE is reported."""
    data_dir, stores, store, mailbox = world
    for n in range(1, 4):
        deliver(store, mailbox, f"message {n}", f"body number {n}")
    first, second = CoreClient(data_dir, stores), CoreClient(data_dir, stores)
    for c in (first, second):
        assert c.send("a LOGIN alice@example.test secret")[-1].startswith("a OK")
        assert c.send("s SELECT INBOX")[-1].startswith("s OK")
    assert first.send("r SEARCH RECENT") == ["* SEARCH 1 2 3", "r OK SEARCH completed"]
    assert first.send("o SEARCH OLD") == ["* SEARCH", "o OK SEARCH completed"]
    assert first.send("t STORE 1 +FLAGS.SILENT (\\Seen)") == ["t OK STORE completed"]
    assert first.send("n SEARCH NEW") == ["* SEARCH 2 3", "n OK SEARCH completed"]
    assert second.send("r SEARCH RECENT") == ["* SEARCH", "* 1 FETCH (UID 1 FLAGS (\\Seen))",
                                              "r OK SEARCH completed"]   # first's STORE
    assert second.send("d STORE 2 +FLAGS.SILENT (\\Deleted)") == ["d OK STORE completed"]
    assert second.send("e EXPUNGE") == ["* 2 EXPUNGE", "e OK EXPUNGE completed"]
    assert first.send("f FETCH 1 (FLAGS)") == ["* 1 FETCH (FLAGS (\\Seen \\Recent))",
                                              "f OK FETCH completed"]     # held back
    assert first.send("x SEARCH ALL") == ["* SEARCH 1 3", "x OK SEARCH completed"]
    assert first.send('y SEARCH SUBJECT "message"') == ["* SEARCH 1 3", "y OK SEARCH completed"]
    assert first.send("z NOOP") == ["* 2 EXPUNGE", "z OK NOOP completed"]


def test_body_fetch_sets_seen_unless_peek(client: CoreClient) -> None:
    client.send("s SELECT INBOX")
    peek = client.send("p FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert peek[0] == "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {22}"
    assert peek[1] == "Subject: message 1"
    assert "\\Seen" not in "".join(peek)
    full = client.send("q FETCH 1 BODY[TEXT]")
    assert "body number 1" in full
    assert full[-2].endswith("FLAGS (\\Seen \\Recent))")


def test_copy_move_and_trycreate(client: CoreClient) -> None:
    client.send("s SELECT INBOX")
    copied = client.send("c COPY 1:2 Archive")
    assert re.fullmatch(r"c OK \[COPYUID \d+ 1:2 1:2\] COPY completed", copied[-1])
    moved = client.send("m UID MOVE 3 Trash")
    assert re.fullmatch(r"\* OK \[COPYUID \d+ 3 1\] Moved", moved[0])
    assert moved[1:] == ["* 3 EXPUNGE", "m OK MOVE completed"]
    assert client.send("n COPY 1 Nowhere") == [
        "n NO [TRYCREATE] Mailbox does not exist; create it first"]
    assert client.send("o STATUS Archive (MESSAGES UIDNEXT UNSEEN)") == [
        "* STATUS Archive (MESSAGES 2 UIDNEXT 3 UNSEEN 2)", "o OK STATUS completed"]


def test_mailbox_management_errors(client: CoreClient) -> None:
    assert client.send("a CREATE Projects/2026") == ["a OK CREATE completed"]
    assert client.send("b CREATE Projects/2026") == [
        "b NO [ALREADYEXISTS] Mailbox already exists"]
    assert client.send("c SELECT Missing")[-1].startswith("c NO [NONEXISTENT]")
    assert client.send("d DELETE INBOX")[-1].startswith("d NO [CANNOT]")
    listed = client.send('e LIST "" "Projects/*"')
    assert listed == ['* LIST (\\HasNoChildren) "/" Projects/2026', "e OK LIST completed"]
    assert client.send("f RENAME Projects/2026 Archive/2026") == ["f OK RENAME completed"]
    assert client.send('g LIST "" "%"')[-1] == "g OK LIST completed"
    assert client.send("h FETCH 1 FLAGS")[0].startswith("h BAD")    # nothing selected


def test_append_gives_appenduid_and_wakes_the_selected_view(client: CoreClient) -> None:
    client.send("s SELECT INBOX")
    message = b"Subject: appended\r\n\r\nhello\r\n"
    first = client.send(b"a APPEND INBOX (\\Seen) {%d}" % len(message))
    assert first == [CONTINUE_LITERAL.decode().rstrip("\r\n")]
    done = client.send(message)       # the literal, then the CRLF that ends the command
    assert "* 4 EXISTS" in done
    assert re.fullmatch(r"a OK \[APPENDUID \d+ 4\] APPEND completed", done[-1])
    assert client.send("b FETCH 4 (FLAGS)")[0] == "* 4 FETCH (FLAGS (\\Seen \\Recent))"


def test_changes_by_another_session_arrive_as_untagged_updates(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox]) -> None:
    data_dir, stores, store, mailbox = world
    deliver(store, mailbox, "one")
    first, second = CoreClient(data_dir, stores), CoreClient(data_dir, stores)
    for c in (first, second):
        c.send("a LOGIN alice@example.test x")
        c.send("s SELECT INBOX")
    second.send("t STORE 1 +FLAGS (\\Flagged)")
    deliver(store, mailbox, "two")
    updates = first.send("n NOOP")
    assert "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))" in updates
    assert "* 2 EXISTS" in updates
    second.send("u STORE 1 +FLAGS (\\Deleted)")
    second.send("v EXPUNGE")
    # Not during FETCH (RFC 9051 7.5.1), then at the next NOOP.
    assert "* 1 EXPUNGE" not in first.send("f FETCH 1:* (FLAGS)")
    assert "* 1 EXPUNGE" in first.send("g NOOP")


def test_condstore_and_qresync(client: CoreClient) -> None:
    assert client.send("e ENABLE QRESYNC") == ["* ENABLED QRESYNC", "e OK ENABLE completed"]
    lines = client.send("s SELECT INBOX")
    highest = int(next(re.search(r"HIGHESTMODSEQ (\d+)", line).group(1)  # type: ignore[union-attr]
                       for line in lines if "HIGHESTMODSEQ" in line))
    stored = client.send(f"t STORE 1 (UNCHANGEDSINCE {highest}) +FLAGS (\\Seen)")
    assert re.fullmatch(r"\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\)\)", stored[0])
    stale = client.send(f"u STORE 1 (UNCHANGEDSINCE {highest}) +FLAGS (\\Flagged)")
    assert stale[-1] == "u OK [MODIFIED 1] Some messages were modified since UNCHANGEDSINCE"
    changed = client.send(f"f FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")
    assert len(changed) == 2
    assert changed[0].startswith("* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (")
    client.send("x STORE 2 +FLAGS (\\Deleted)")
    client.send("y EXPUNGE")
    assert client.send(f"v UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest} VANISHED)")[0] == (
        "* VANISHED (EARLIER) 2")


def test_esearch_and_saved_results(client: CoreClient) -> None:
    client.send("s SELECT INBOX")
    assert client.send("a UID SEARCH RETURN (MIN MAX COUNT) ALL") == [
        '* ESEARCH (TAG "a") UID MIN 1 MAX 3 COUNT 3', "a OK SEARCH completed"]
    client.send('b SEARCH RETURN (SAVE) SUBJECT "message 2"')
    assert client.send("c FETCH $ (UID)") == ["* 2 FETCH (UID 2)", "c OK FETCH completed"]


def test_quota_and_namespace(client: CoreClient) -> None:
    assert client.send("a NAMESPACE") == ['* NAMESPACE (("" "/")) NIL NIL',
                                          "a OK NAMESPACE completed"]
    assert client.send("b GETQUOTAROOT INBOX") == ["* QUOTAROOT INBOX",
                                                   "b OK GETQUOTAROOT completed"]
    assert client.send('c SETQUOTA "" (STORAGE 10)')[0].startswith("c NO [NOPERM]")


def test_message_quota_is_reported_and_enforced(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox]) -> None:
    data_dir, _stores, store, mailbox = world
    deliver(store, mailbox, "one")
    directory = SqliteDirectory(open_database(data_dir))
    directory.set_quota(ADDRESS, 10_000)
    c = CoreClient(data_dir, MaildirStores(data_dir, directory, messages_limit=2))
    c.send("a LOGIN alice@example.test x")
    assert c.send("b GETQUOTAROOT INBOX") == [
        '* QUOTAROOT INBOX ""', '* QUOTA "" (STORAGE 1 9 MESSAGE 1 2)',
        "b OK GETQUOTAROOT completed"]
    message = b"Subject: two\r\n\r\nhello\r\n"
    c.send(b"c APPEND INBOX {%d+}\r\n" % len(message) + message)
    c.send(b"d APPEND INBOX {%d+}\r\n" % len(message) + message)
    assert c.send("e STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 2)"
    refused = c.send(b"f APPEND INBOX {%d+}\r\n" % len(message) + message)
    assert refused[-1] == "f NO [OVERQUOTA] Quota exceeded"


def test_mailbox_names_are_modified_utf7_until_utf8_is_enabled(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox]) -> None:
    data_dir, stores, _store, _mailbox = world
    c = CoreClient(data_dir, stores)
    c.send("a LOGIN alice@example.test x")
    assert c.send("b CREATE Entw&APw-rfe") == ["b OK CREATE completed"]
    assert c.send('c LIST "" "Entw*"') == ['* LIST (\\HasNoChildren) "/" Entw&APw-rfe',
                                           "c OK LIST completed"]
    assert c.send("d ENABLE UTF8=ACCEPT") == ["* ENABLED UTF8=ACCEPT",
                                              "d OK ENABLE completed"]
    assert c.send('e LIST "" "Entw*"') == ['* LIST (\\HasNoChildren) "/" "Entwürfe"',
                                           "e OK LIST completed"]
    assert c.send('f STATUS "Entwürfe" (MESSAGES)') == ['* STATUS "Entwürfe" (MESSAGES 0)',
                                                        "f OK STATUS completed"]
    # On disk: Maildir++ with the modified UTF-7 name, as Dovecot and Courier write it.
    assert (data_dir / "mail/example.test/alice/.Entw&APw-rfe").is_dir()


def test_search_decodes_encoded_headers_and_base64_bodies(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox]) -> None:
    """SEARCH matches the decoded text: RFC 2047 words in headers, base64 text parts."""
    data_dir, stores, store, mailbox = world
    store.deliver(b"From: bob@example.test\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
                  b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                  b"Content-Transfer-Encoding: base64\n\n"
                  + base64.encodebytes(b"Treffen am Montag\n"), [mailbox])
    deliver(store, mailbox, "plain", "nothing here")
    c = CoreClient(data_dir, stores)
    c.send("a LOGIN alice@example.test x")
    c.send("b SELECT INBOX")
    assert c.send("c UID SEARCH CHARSET UTF-8 SUBJECT {7+}\r\nGrüße")[0] == "* SEARCH 1"
    assert c.send('d UID SEARCH BODY "Montag"')[0] == "* SEARCH 1"
    assert c.send('e UID SEARCH TEXT "montag"')[0] == "* SEARCH 1"


def test_header_search_reads_the_store_a_batch_at_a_time(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A search over a big folder never asks the store for every header at once."""
    from appliance.imap.search_view import HeaderBatch
    data_dir, stores, store, mailbox = world
    for n in range(7):
        deliver(store, mailbox, f"batch {n}")
    monkeypatch.setattr(HeaderBatch, "BATCH", 3)
    asked: list[int] = []
    mail = stores.open(ADDRESS)
    original = mail.headers_many

    def counting(name: str, uids: Iterable[int]) -> dict[int, bytes]:
        wanted = list(uids)
        asked.append(len(wanted))
        return original(name, wanted)
    monkeypatch.setattr(mail, "headers_many", counting)
    c = CoreClient(data_dir, stores)
    c.send("a LOGIN alice@example.test x")
    c.send("b SELECT INBOX")
    assert c.send('c UID SEARCH SUBJECT "batch 6"')[0] == "* SEARCH 7"
    assert asked == [3, 3, 1]
    assert c.send('d UID SEARCH SUBJECT "batch 5"')[0] == "* SEARCH 6"
    assert asked == [3, 3, 1]                   # the decoded subjects were kept


def test_search_caches_are_kept_for_a_bounded_number_of_accounts(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.imap import search_view
    data_dir, _stores, _store, _mailbox = world
    monkeypatch.setattr(search_view, "CACHED_ACCOUNTS", 2)
    monkeypatch.setattr(search_view, "_caches", weakref.WeakKeyDictionary())
    directory = SqliteDirectory(open_database(data_dir))
    stores = MaildirStores(data_dir, directory)
    for name in ("one", "two", "three"):
        directory.add_account(f"{name}@example.test", "x")
        search_view._field_cache(stores.open(f"{name}@example.test"))
    kept = {mail.address for mail in search_view._caches}
    assert kept == {"two@example.test", "three@example.test"}


def test_idle_polls_sync_the_folder_only_after_a_change(
        world: tuple[Path, MaildirStores, MaildirStore, Mailbox], client: CoreClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _data_dir, _stores, store, mailbox = world
    client.send("s SELECT INBOX")
    session = client.session
    assert session.account is not None
    syncs: list[str] = []
    original = session.account.sync

    def counting(name: str, claim_recent: bool = True) -> object:
        syncs.append(name)
        return original(name, claim_recent=claim_recent)
    monkeypatch.setattr(session.account, "sync", counting)
    assert session.idle_poll() == b""           # the first look: nothing new
    assert session.idle_poll() == b""
    assert syncs == ["INBOX"]                   # the second poll did not sync
    deliver(store, mailbox, "while idling")
    assert session.idle_poll() == b"* 4 EXISTS\r\n* 4 RECENT\r\n"
    # The token is taken before that sync, which moved the file to cur/ itself: one more
    # sync finds nothing (safe: a delivery during the sync is never missed), then quiet.
    assert session.idle_poll() == b""
    settled = len(syncs)
    assert settled <= 3
    assert session.idle_poll() == b""
    assert len(syncs) == settled
