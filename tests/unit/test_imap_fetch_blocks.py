"""A range FETCH of index items (1:* FLAGS UID RFC822.SIZE, the resync) keeps each whole
block of lines as the bytes sent (`fetch_lines._BLOCKS`): what it answers must always be
what the general renderer (`fetch_response.fetch_line`, message by message) answers, whatever
changed in between (flags, \\Recent marks, IMAP4rev2, the item list, where the range starts
and ends), and the kept blocks stay bounded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap import fetch_lines
from appliance.imap.fetch_items import FetchAttribute, FetchKind
from appliance.imap.fetch_response import fetch_line
from appliance.imap.selected import SelectedMailbox
from appliance.imap.session import ImapConfig, ImapSession
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta
from appliance.storage.maildir.stores import MaildirStores

SHAPES = {
    "flags uid size": (FetchKind.FLAGS, FetchKind.UID, FetchKind.RFC822_SIZE),
    "flags": (FetchKind.FLAGS,),
    "size date": (FetchKind.RFC822_SIZE, FetchKind.INTERNALDATE),
    "modseq flags": (FetchKind.MODSEQ, FetchKind.FLAGS),
}
FLAG_SETS = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"}),
             frozenset({"$Label", "\\Answered"})]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ImapSession:
    """A real session core; the renderer reads only whether IMAP4rev2 is enabled."""
    data: Path = tmp_path_factory.mktemp("blocks")
    stores = MaildirStores(data, SqliteDirectory(open_database(data)))
    return ImapSession(stores, ImapConfig("mx.example.test", 1_000_000), secure=True,
                       client_ip="192.0.2.1")


@contextmanager
def block_size(size: int) -> Iterator[None]:
    """Small blocks, so a few dozen messages span several whole and partial ones."""
    kept = fetch_lines.INDEX_BATCH
    fetch_lines.INDEX_BATCH = size
    try:
        yield
    finally:
        fetch_lines.INDEX_BATCH = kept


def view_of(metas: list[MessageMeta], recent: frozenset[int] = frozenset()) -> SelectedMailbox:
    uidnext = metas[-1].uid + 1 if metas else 1
    return SelectedMailbox(FolderSnapshot("INBOX", 7, uidnext, 100, tuple(metas), recent))


def meta(uid: int, flags: frozenset[str] = frozenset(), modseq: int = 1) -> MessageMeta:
    return MessageMeta(uid, flags, modseq, 1_700_000_000.0 + uid * 61, 1000 + uid * 7)


def answer(session: ImapSession, view: SelectedMailbox, seqs: list[int], shape: str,
           uid: bool, modseq: bool) -> list[bytes]:
    attributes = [FetchAttribute(kind) for kind in SHAPES[shape]]
    return list(fetch_lines.index_only(session, view, seqs, attributes, uid, modseq))


def general(session: ImapSession, view: SelectedMailbox, seqs: list[int], shape: str,
            uid: bool, modseq: bool) -> bytes:
    attributes = [FetchAttribute(kind) for kind in SHAPES[shape]]
    return b"".join(fetch_line(seq, view.messages[seq - 1], attributes, None,
                               recent=session.is_recent(view.messages[seq - 1].uid),
                               include_uid=uid, include_modseq=modseq, utf8=False)
                    for seq in seqs)


# A step: a FETCH of a range (first, length) or of listed numbers, or a flag change of one
# message (as a STORE makes: a new meta in a new tuple), or new \Recent marks.
fetches = st.tuples(st.just("fetch"), st.integers(1, 40), st.integers(0, 40),
                    st.sampled_from(sorted(SHAPES)), st.booleans(), st.booleans(),
                    st.booleans())
stores = st.tuples(st.just("store"), st.integers(0, 39), st.sampled_from(range(len(FLAG_SETS))))
marks = st.tuples(st.just("recent"), st.frozensets(st.integers(1, 80), max_size=10))
listed = st.tuples(st.just("listed"), st.lists(st.integers(1, 40), min_size=1, max_size=12,
                                               unique=True))


@settings(max_examples=150, deadline=None)
@given(count=st.integers(1, 40), gap=st.integers(1, 2), block=st.integers(1, 6),
       steps=st.lists(st.one_of(fetches, stores, marks, listed), min_size=1, max_size=12))
def test_kept_blocks_answer_what_the_general_renderer_does(
        session: ImapSession, count: int, gap: int, block: int,
        steps: list[tuple[object, ...]]) -> None:
    metas = [meta(1 + i * gap, FLAG_SETS[i % len(FLAG_SETS)]) for i in range(count)]
    view = view_of(metas)
    with block_size(block):
        for step in steps:
            if step[0] == "store":
                index, flags = int(step[1]) % count, FLAG_SETS[int(step[2])]   # type: ignore[call-overload]
                metas[index] = meta(metas[index].uid, flags, metas[index].modseq + 1)
                view = view_of(metas, frozenset(view.recent))
            elif step[0] == "recent":
                view = view_of(metas, step[1])       # type: ignore[arg-type]
            elif step[0] == "listed":
                seqs = sorted(n for n in step[1] if n <= count)   # type: ignore[attr-defined]
                session.selected = view
                try:
                    assert b"".join(answer(session, view, seqs, "flags uid size", True,
                                           False)) \
                        == general(session, view, seqs, "flags uid size", True, False)
                finally:
                    session.selected = None
            else:
                _, first, length, shape, uid, modseq, rev2 = step
                start = min(int(first), count)          # type: ignore[call-overload]
                seqs = list(range(start, min(count, start + int(length)) + 1))  # type: ignore[call-overload]
                session.enabled = frozenset({"IMAP4REV2"}) if rev2 else frozenset()
                session.selected = view
                try:
                    got = b"".join(answer(session, view, seqs, str(shape), bool(uid),
                                          bool(modseq)))
                    assert got == general(session, view, seqs, str(shape), bool(uid),
                                          bool(modseq))
                finally:
                    session.enabled, session.selected = frozenset(), None


def test_an_unchanged_block_is_sent_as_kept_and_a_changed_one_is_made_anew(
        session: ImapSession) -> None:
    metas = [meta(uid, FLAG_SETS[uid % 4]) for uid in range(1, 13)]
    view = view_of(metas)
    seqs = list(range(1, 13))
    with block_size(4):
        first = answer(session, view, seqs, "flags uid size", True, False)
        again = answer(session, view_of(metas), seqs, "flags uid size", True, False)
        assert len(first) == 3
        assert all(a is b for a, b in zip(first, again, strict=True))   # the kept bytes
        metas[5] = meta(6, frozenset({"\\Deleted"}), 2)                 # a STORE in block 2
        changed = answer(session, view_of(metas), seqs, "flags uid size", True, False)
    assert changed[0] is first[0]
    assert changed[2] is first[2]
    assert changed[1] != first[1]
    assert b"* 6 FETCH (FLAGS (\\Deleted) UID 6 RFC822.SIZE 1042)\r\n" in changed[1]


def test_recent_marks_belong_to_the_session_not_the_kept_block(session: ImapSession) -> None:
    metas = [meta(uid) for uid in range(1, 9)]
    seqs = list(range(1, 9))
    with block_size(4):
        plain = b"".join(answer(session, view_of(metas), seqs, "flags", False, False))
        marked_view = view_of(metas, frozenset({2, 7}))
        session.selected = marked_view
        try:
            marked = b"".join(answer(session, marked_view, seqs, "flags", False, False))
        finally:
            session.selected = None
        again = b"".join(answer(session, view_of(metas), seqs, "flags", False, False))
    assert plain == again
    assert plain.count(b"\\Recent") == 0
    assert marked.count(b"\\Recent") == 2
    assert b"* 2 FETCH (FLAGS (\\Recent))\r\n" in marked


def test_kept_blocks_stay_bounded(session: ImapSession) -> None:
    with block_size(2):
        for folder in range(fetch_lines._BLOCKS_MAX * 2):
            metas = [meta(uid + folder * 10) for uid in range(1, 5)]
            answer(session, view_of(metas), [1, 2, 3, 4], "flags uid size", True, False)
            assert len(fetch_lines._BLOCKS) <= fetch_lines._BLOCKS_MAX
