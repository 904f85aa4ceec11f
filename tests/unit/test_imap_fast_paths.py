"""The fast paths of issue 4's benchmark operations answer exactly what the general ones do:
FETCH of whole messages, STORE's own-change bookkeeping, reading message files by the size
in their name, the store's snapshot order, and the debounced malloc_trim."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import pytest
from unit.test_imap_session import CoreClient, deliver

from appliance.core import memory
from appliance.imap.fetch_items import FetchAttribute, FetchKind, Partial, Section
from appliance.imap.fetch_response import (
    MessageSource,
    fetch_line,
    whole_message_names,
    whole_message_pieces,
)
from appliance.imap.selected import FlagsChanged, SelectedMailbox
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox
from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta
from appliance.storage.maildir.files import read_message
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.stores import MaildirStores
from appliance.storage.maildir.sync import FolderState
from harness.imap_core import ADDRESS

CONTENT = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
META = MessageMeta(7, frozenset({"\\Seen", "$Label"}), 42, 1_700_000_000.0, len(CONTENT))
WHOLE = (FetchAttribute(FetchKind.BODY_SECTION, peek=True),
         FetchAttribute(FetchKind.BODY_SECTION, Section()),
         FetchAttribute(FetchKind.RFC822))
INDEX = (FetchAttribute(FetchKind.FLAGS), FetchAttribute(FetchKind.UID),
         FetchAttribute(FetchKind.RFC822_SIZE), FetchAttribute(FetchKind.INTERNALDATE),
         FetchAttribute(FetchKind.MODSEQ))


def _general(attributes: tuple[FetchAttribute, ...], *, recent: bool, include_uid: bool,
             include_modseq: bool) -> bytes:
    source = MessageSource(lambda: CONTENT, lambda key: None, lambda key, value: None)
    return fetch_line(3, META, attributes, source, recent=recent, include_uid=include_uid,
                      include_modseq=include_modseq, utf8=False)


@pytest.mark.parametrize("attributes", [
    *((whole,) for whole in WHOLE),
    *((index, whole) for index, whole in itertools.product(INDEX, WHOLE)),
    *((whole, index) for index, whole in itertools.product(INDEX, WHOLE)),
    (INDEX[0], WHOLE[0], INDEX[2], WHOLE[2], INDEX[4]),
])
@pytest.mark.parametrize(("recent", "include_uid", "include_modseq"),
                         [(False, False, False), (True, True, True), (False, True, False)])
def test_whole_message_pieces_match_fetch_line(attributes: tuple[FetchAttribute, ...],
                                               recent: bool, include_uid: bool,
                                               include_modseq: bool) -> None:
    names = whole_message_names(attributes)
    assert names is not None
    pieces = whole_message_pieces(3, META, attributes, names, CONTENT, recent=recent,
                                  include_uid=include_uid, include_modseq=include_modseq)
    assert b"".join(pieces) == _general(attributes, recent=recent, include_uid=include_uid,
                                        include_modseq=include_modseq)
    assert sum(piece is CONTENT for piece in pieces) == sum(n is not None for n in names)


@pytest.mark.parametrize("attribute", [
    FetchAttribute(FetchKind.BODY_SECTION, Section(text="HEADER"), peek=True),
    FetchAttribute(FetchKind.BODY_SECTION, Section(part=(1,))),
    FetchAttribute(FetchKind.BODY_SECTION, partial=Partial(0, 10)),
    FetchAttribute(FetchKind.BINARY, Section()),
    FetchAttribute(FetchKind.RFC822_TEXT),
    FetchAttribute(FetchKind.ENVELOPE),
])
def test_anything_more_than_the_whole_text_takes_the_general_path(
        attribute: FetchAttribute) -> None:
    assert whole_message_names((FetchAttribute(FetchKind.UID), attribute)) is None


# -- STORE: the view and its own changes -----------------------------------------------------

def meta(uid: int, *flags: str, modseq: int = 1) -> MessageMeta:
    return MessageMeta(uid, frozenset(flags), modseq, 1_700_000_000.0, 100)


def snap(*messages: MessageMeta, modseq: int) -> FolderSnapshot:
    return FolderSnapshot("INBOX", 7, 10, modseq, tuple(messages))


def test_own_store_right_after_the_last_look_needs_no_comparison() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2), modseq=1))
    mine = (meta(1, "\\Flagged", modseq=2), meta(2, "\\Flagged", modseq=2))
    view.apply_own(mine)
    after = snap(*mine, modseq=2)
    assert view.refresh(after, allow_expunge=True) == []
    assert view.messages is after.messages                  # shared with the store again
    assert list(view.uids) == [1, 2]


def test_a_change_elsewhere_before_our_store_is_still_reported() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2), modseq=1))
    theirs = meta(2, "\\Seen", modseq=2)                     # another session, first
    mine = meta(1, "\\Flagged", modseq=3)
    view.apply_own((mine,))
    updates = view.refresh(snap(mine, theirs, modseq=3), allow_expunge=True)
    assert updates == [FlagsChanged(2, theirs)]
    assert view.message_at(1) is mine


def test_a_change_elsewhere_after_our_store_is_reported() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2), modseq=1))
    mine = meta(1, "\\Flagged", modseq=2)
    view.apply_own((mine,))
    theirs = meta(2, "\\Deleted", modseq=3)
    assert view.refresh(snap(mine, theirs, modseq=3),
                        allow_expunge=True) == [FlagsChanged(2, theirs)]


@pytest.fixture
def two(tmp_path: Path) -> tuple[CoreClient, CoreClient]:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    account = directory.add_account(ADDRESS, "x")
    store, stores = MaildirStore(tmp_path), MaildirStores(tmp_path, directory)
    for n in range(1, 6):
        deliver(store, Mailbox(account.id, ADDRESS, account.maildir), f"message {n}")
    clients = CoreClient(tmp_path, stores), CoreClient(tmp_path, stores)
    for c in clients:
        assert c.send("a LOGIN alice@example.test x")[-1].startswith("a OK")
        assert c.send("s SELECT INBOX")[-1].startswith("s OK")
    return clients


def test_store_answers_once_and_the_next_command_repeats_nothing(
        two: tuple[CoreClient, CoreClient]) -> None:
    first, second = two
    assert first.send("t STORE 1:3 +FLAGS.SILENT (\\Seen)") == ["t OK STORE completed"]
    assert first.send("u UID STORE 2,4 +FLAGS (\\Flagged)") == [
        "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Seen \\Recent))",
        "* 4 FETCH (UID 4 FLAGS (\\Flagged \\Recent))", "u OK STORE completed"]
    assert first.send("n NOOP") == ["n OK NOOP completed"]
    assert second.send("o STORE 5 +FLAGS.SILENT (\\Answered)") == [     # sees the first's
        "* 1 FETCH (UID 1 FLAGS (\\Seen))", "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Seen))",
        "* 3 FETCH (UID 3 FLAGS (\\Seen))", "* 4 FETCH (UID 4 FLAGS (\\Flagged))",
        "o OK STORE completed"]
    assert first.send("v STORE 1 -FLAGS (\\Seen)") == [          # its own, then the second's
        "* 1 FETCH (FLAGS (\\Recent))", "* 5 FETCH (UID 5 FLAGS (\\Answered \\Recent))",
        "v OK STORE completed"]
    assert first.send("w NOOP") == ["w OK NOOP completed"]
    assert second.send("x NOOP") == ["* 1 FETCH (UID 1 FLAGS ())", "x OK NOOP completed"]


def test_fetch_of_whole_messages_over_the_core(two: tuple[CoreClient, CoreClient]) -> None:
    first, _second = two
    lines = first.send("f FETCH 2,4 (UID BODY.PEEK[] FLAGS)")
    assert lines[0].startswith("* 2 FETCH (UID 2 BODY[] {")
    assert "Subject: message 2" in lines
    assert lines[-2] == " FLAGS (\\Recent))"
    assert lines[-1] == "f OK FETCH completed"
    assert first.send("g FETCH 1 RFC822")[-2:] == [" FLAGS (\\Seen \\Recent))",
                                                   "g OK FETCH completed"]


# -- the store ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stated", [None, 0, 10, 44, 45, 46, 4000, 10**15, 10**40])
def test_read_message_by_the_size_in_its_name(tmp_path: Path, stated: int | None) -> None:
    data = b"x" * 45
    name = f"1700000000.M1P1.host,S={stated},W=99:2,S" if stated is not None else \
        "1700000000.M1P1.host:2,S"
    path = tmp_path / name
    path.write_bytes(data)
    assert read_message(os.fspath(path)) == data
    with pytest.raises(FileNotFoundError):
        read_message(os.fspath(tmp_path / "gone,S=5:2,"))


def test_snapshot_is_in_uid_order_whatever_order_rows_came_in(tmp_path: Path) -> None:
    state = FolderState(1, "INBOX", tmp_path, 7, 10, 1, 1, None)
    for uid in (2, 5, 9):
        state.put(meta(uid), "cur", f"{uid}:2,")
    state.put(meta(3), "cur", "3:2,")                      # a row out of order (refresh)
    state.put(meta(5, "\\Seen", modseq=2), "cur", "5:2,S")   # a replaced one keeps its place
    assert [m.uid for m in state.snapshot().messages] == [2, 3, 5, 9]
    state.drop(3)
    assert [m.uid for m in state.snapshot().messages] == [2, 5, 9]
    assert state.snapshot().messages[1].flags == {"\\Seen"}


# -- malloc_trim after bursts ------------------------------------------------------------------

def test_a_burst_of_requests_costs_one_trim() -> None:
    # Windows wide against the sleeps between requests, so a loaded machine's late wake-ups
    # (tens of ms) cannot make a gap look quiet.
    async def burst() -> memory.BurstTrimmer:
        loop = asyncio.get_running_loop()
        trimmer = memory.BurstTrimmer(loop, None, quiet=0.3, latest=1.0)
        for _ in range(5):
            trimmer.request()
            await asyncio.sleep(0.01)
        assert trimmer.trims == 0                          # still busy
        await asyncio.sleep(0.6)
        assert trimmer.trims == 1
        started = loop.time()
        while loop.time() - started < 1.5:                 # a long burst: trimmed by `latest`
            trimmer.request()
            await asyncio.sleep(0.03)
        assert trimmer.trims == 2
        return trimmer

    asyncio.run(burst())


def test_trim_after_burst_uses_the_running_loop() -> None:
    async def ask() -> None:
        memory.trim_after_burst()
        memory.trim_after_burst()
        trimmer = memory._trimmers[asyncio.get_running_loop()]
        assert trimmer.trims == 0
        await asyncio.sleep(memory.TRIM_QUIET + 0.2)
        assert trimmer.trims == 1

    asyncio.run(ask())


# -- FETCH of index items: fragments kept per shared MessageMeta ------------------------------

def test_kept_fetch_fragments_follow_shape_recent_and_flags(
        two: tuple[CoreClient, CoreClient]) -> None:
    first, second = two                 # the store shares metas: one fragment cache entry
    assert first.send("a FETCH 1 (FLAGS)") == ["* 1 FETCH (FLAGS (\\Recent))",
                                               "a OK FETCH completed"]
    assert second.send("b FETCH 1 (FLAGS)") == ["* 1 FETCH (FLAGS ())",      # not recent here
                                                "b OK FETCH completed"]
    assert first.send("c FETCH 1 (RFC822.SIZE FLAGS)")[0].startswith(
        "* 1 FETCH (RFC822.SIZE ")
    assert first.send("d UID FETCH 1 (FLAGS)") == ["* 1 FETCH (UID 1 FLAGS (\\Recent))",
                                                   "d OK FETCH completed"]
    assert second.send("e STORE 1 +FLAGS.SILENT (\\Seen)") == ["e OK STORE completed"]
    assert second.send("f FETCH 1 (FLAGS)") == ["* 1 FETCH (FLAGS (\\Seen))",
                                                "f OK FETCH completed"]
    assert first.send("g NOOP") == ["* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))",
                                    "g OK NOOP completed"]
    assert first.send("h FETCH 1 (FLAGS)") == ["* 1 FETCH (FLAGS (\\Seen \\Recent))",
                                               "h OK FETCH completed"]
