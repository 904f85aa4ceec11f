"""Which commands the IMAP driver may answer on the event loop (`server_inline`): the table of
eligible commands, the per-account count of worker-thread jobs, and the folder change check,
against a real Maildir store (a delivery, another session's STORE)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from appliance.imap import server_inline as inline
from appliance.imap.commands.dispatch import parse_command
from appliance.imap.receiver import Command
from appliance.imap.session import ImapConfig, ImapSession
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.stores import MaildirStores
from harness.imap_core import ADDRESS, CoreWire

World = tuple[MaildirStores, MaildirStore, Mailbox]


@pytest.fixture
def world(tmp_path: Path) -> World:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    account = directory.add_account(ADDRESS, "x")
    mailbox = Mailbox(account.id, ADDRESS, account.maildir)
    store = MaildirStore(tmp_path)
    for n in range(3):
        _deliver(store, mailbox, n)
    return MaildirStores(tmp_path, directory), store, mailbox


def _deliver(store: MaildirStore, mailbox: Mailbox, n: int) -> None:
    store.deliver(f"From: bob@example.test\nTo: {ADDRESS}\nSubject: m{n}\n\nbody {n}\n"
                  .encode(), [mailbox])


def _session(stores: MaildirStores, select: str | None = "SELECT INBOX") -> CoreWire:
    wire = CoreWire(stores, config=ImapConfig("mx.example.test", 1_000_000),
                    client_ip="192.0.2.1", any_password=True)
    wire.send(b"a LOGIN alice@example.test secret\r\n")
    if select is not None:
        wire.send(f"s {select}\r\n".encode())
    wire.output.clear()
    return wire


def _eligible(session: ImapSession, text: str) -> bool:
    name, _, args = text.partition(" ")
    if name == "UID":
        sub, _, rest = args.partition(" ")
        name, args = "UID", f"{sub} {rest}"
    command = parse_command(Command("t", name, args.encode()), session.state,
                            session.parse_context)
    return inline.eligible(session, command)


@pytest.mark.parametrize(("text", "expected"), [
    ("NOOP", True),
    ("CHECK", True),
    ("CAPABILITY", True),
    ("FETCH 1:* (FLAGS UID RFC822.SIZE)", True),
    ("FETCH 1:* (FLAGS INTERNALDATE MODSEQ)", True),
    ("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)", True),
    ("FETCH 1 BODY.PEEK[]", True),
    ("UID FETCH 2 (BODY.PEEK[] FLAGS)", True),
    ("FETCH 1 BODY[]", False),                      # sets \Seen: a durable STORE
    ("FETCH 1 RFC822", False),
    ("FETCH 1 BODY.PEEK[HEADER]", False),           # parses the message
    ("FETCH 1 ENVELOPE", False),
    ("FETCH 1 BODYSTRUCTURE", False),
    ("FETCH 1 BODY.PEEK[]<0.10>", False),
    ("STORE 1 +FLAGS (\\Seen)", False),
    ("SEARCH ALL", False),
    ("EXPUNGE", False),
    ("SELECT INBOX", False),
    ("STATUS INBOX (MESSAGES)", False),
])
def test_what_may_run_on_the_loop(world: World, text: str, expected: bool) -> None:
    wire = _session(world[0])
    assert _eligible(wire.session, text) is expected


def test_vanished_fetch_asks_the_index_so_it_goes_to_a_thread(world: World) -> None:
    wire = _session(world[0])
    wire.send(b"e ENABLE QRESYNC\r\n")
    assert _eligible(wire.session, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
    assert not _eligible(wire.session, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")


def test_body_fetch_is_eligible_in_a_read_only_folder(world: World) -> None:
    wire = _session(world[0], "EXAMINE INBOX")
    assert _eligible(wire.session, "FETCH 1 BODY[]")       # EXAMINE: no \Seen is set


def test_fetch_needs_a_selected_folder(world: World) -> None:
    wire = _session(world[0], select=None)
    assert _eligible(wire.session, "NOOP")
    assert inline.unchanged(wire.session, None)     # nothing selected: no store call


def test_thread_jobs_count_per_account() -> None:
    jobs = inline.ThreadJobs()
    assert jobs.idle("a@example.test")
    assert jobs.idle(None)
    jobs.started("a@example.test")
    jobs.started("a@example.test")
    jobs.started("b@example.test")
    assert not jobs.idle("a@example.test")
    assert not jobs.idle("b@example.test")
    jobs.finished("a@example.test")
    assert not jobs.idle("a@example.test")
    jobs.finished("a@example.test")
    jobs.finished("b@example.test")
    assert jobs.idle("a@example.test")
    assert jobs.idle("b@example.test")
    assert jobs.total == 3
    jobs.finished("c@example.test")                 # never started: no effect
    assert jobs.idle("c@example.test")


def test_unchanged_until_a_delivery(world: World) -> None:
    stores, store, mailbox = world
    wire = _session(stores)
    token = inline.token_now(wire.session)
    assert token is not None
    assert token[0] == "INBOX"
    assert inline.unchanged(wire.session, token)
    wire.send(b"n NOOP\r\n")                         # a command in between changes nothing
    assert inline.unchanged(wire.session, token)
    _deliver(store, mailbox, 9)
    assert not inline.unchanged(wire.session, token)
    assert inline.unchanged(wire.session, inline.token_now(wire.session))


def test_unchanged_until_another_session_stores(world: World) -> None:
    stores = world[0]
    wire, other = _session(stores), _session(stores)
    token = inline.token_now(wire.session)
    other.send(b"x STORE 1 +FLAGS (\\Flagged)\r\n")
    assert not inline.unchanged(wire.session, token)


def test_a_token_of_another_folder_is_not_unchanged(world: World) -> None:
    wire = _session(world[0])
    token = inline.token_now(wire.session)
    assert token is not None
    wire.send(b"c CREATE Other\r\ns SELECT Other\r\n")
    assert not inline.unchanged(wire.session, token)
    assert not inline.unchanged(wire.session, None)


def test_store_lock_is_taken_only_when_free(world: World) -> None:
    wire = _session(world[0])
    lock = inline.StoreLock(wire.session.account)
    assert lock.take()
    assert lock.take()                       # the store's RLock: the loop's own thread
    lock.give()
    lock.give()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        assert lock.take()
        held.set()
        release.wait(10)
        lock.give()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    started = time.monotonic()
    assert not lock.take()                   # at once, not after the holder is done
    assert time.monotonic() - started < 0.1
    release.set()
    holder.join(10)
    assert lock.take()
    lock.give()


def test_nothing_to_lock_before_login() -> None:
    lock = inline.StoreLock(None)
    assert lock.take()
    lock.give()
