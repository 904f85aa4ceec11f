"""Untagged FETCH lines built without parsing a message, for the commands clients repeat on
big mailboxes: the resync of index items (FLAGS UID RFC822.SIZE ..., rendered once per
message and kept), FETCH of whole messages (BODY[], BODY.PEEK[], RFC822: read and sent as
they are), and STORE's `* n FETCH (FLAGS ...)` echo (RFC 9051 6.4.6, 7.5.2).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from appliance.imap import responses as r
from appliance.imap.fetch_items import FetchAttribute, FetchKind
from appliance.imap.fetch_response import whole_message_pieces
from appliance.imap.formats import internal_date, render_flags
from appliance.imap.selected import SelectedMailbox
from appliance.storage.mailbox_api import MessageMeta

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

INDEX_BATCH = 1024          # index-only FETCH lines per yielded chunk (well under 1 ms)


def whole_messages(session: ImapSession, seqs: list[int],
                   attributes: Sequence[FetchAttribute], names: Sequence[bytes | None],
                   uid: bool, include_modseq: bool, tag: str) -> Iterator[bytes]:
    """FETCH of whole messages (BODY.PEEK[], a client downloading mail): each file read
    once and its text yielded as a chunk of its own, never copied here (the driver hands
    chunks to the transport together, one writev), the response text around it joined
    between two messages; the driver checks its inline budget after each chunk."""
    account, view = session.account, session.selected
    assert account is not None
    assert view is not None
    recent = view.recent if not session.rev2 else frozenset()
    messages, folder = view.messages, view.name
    expunged = False
    around: list[bytes] = []            # response text since the last message text
    metas = [messages[seq - 1] for seq in seqs]
    read = account.read_many(folder, [meta.uid for meta in metas])   # one look-up per batch
    for seq, meta, (_uid, content) in zip(seqs, metas, read, strict=True):
        if content is None:
            expunged = True
            continue
        for piece in whole_message_pieces(seq, meta, attributes, names, content,
                                          recent=meta.uid in recent, include_uid=uid,
                                          include_modseq=include_modseq):
            if piece is content:
                yield b"".join(around)
                around = []
                yield content
            else:
                around.append(piece)
    if around:
        yield b"".join(around)
    if expunged:
        yield r.tagged_no(tag, r.EXPUNGE_ISSUED, "EXPUNGEISSUED")
    else:
        yield r.tagged_ok(tag, "FETCH " + r.DONE)


def index_only(session: ImapSession, view: SelectedMailbox, seqs: list[int],
               attributes: Sequence[FetchAttribute], uid: bool,
               include_modseq: bool) -> Iterator[bytes]:
    """The common resync FETCH (FLAGS UID RFC822.SIZE ...) without opening any file.

    Each message's items are rendered once and kept for the item list last asked
    (`_FRAGMENTS`, keyed by the identity of the immutable MessageMeta the store shares
    between sessions), so the next resync -- by this client or any other on the folder --
    only adds sequence numbers. A range of sequence numbers (1:*, the usual resync) goes
    further: each whole block of `INDEX_BATCH` messages is kept as the bytes sent
    (`_BLOCKS`), reused while the block's messages, \\Recent marks and item list are the
    same, so a resync of a 10,000-message folder where little changed joins ten blocks.
    """
    kinds = [a.kind for a in attributes]
    if uid and FetchKind.UID not in kinds:
        kinds.insert(0, FetchKind.UID)
    if include_modseq and FetchKind.MODSEQ not in kinds:
        kinds.append(FetchKind.MODSEQ)
    if len(_SHAPES) > _SHAPES_MAX:
        _SHAPES.clear()
    shape = _SHAPES.setdefault(tuple(kinds), tuple(kinds))
    recent = view.recent if not session.rev2 else _NO_RECENT
    if len(_FRAGMENTS) > _FRAGMENTS_MAX:
        _FRAGMENTS.clear()
    if not seqs:
        return
    first, last = seqs[0], seqs[-1]
    if last - first + 1 == len(seqs):      # ascending and unique: a range, e.g. 1:*
        start = first
        while start <= last:
            block_last = ((start - 1) // INDEX_BATCH + 1) * INDEX_BATCH
            stop = min(block_last, last)
            if stop == block_last and start == block_last - INDEX_BATCH + 1:
                yield _block(view, start, shape, recent)
            else:
                yield _render(view, range(start, stop + 1), shape, recent).encode()
            start = stop + 1
        return
    for at in range(0, len(seqs), INDEX_BATCH):
        yield _render(view, seqs[at:at + INDEX_BATCH], shape, recent).encode()


def _render(view: SelectedMailbox, seqs: Sequence[int], shape: tuple[FetchKind, ...],
            recent: AbstractSet[int]) -> str:
    """The FETCH lines of `seqs`, each message's items from `_FRAGMENTS` when kept."""
    messages, fragments = view.messages, _FRAGMENTS
    lines: list[str] = []
    for seq in seqs:
        meta = messages[seq - 1]
        is_recent = meta.uid in recent
        found = fragments.get(id(meta))
        if (found is not None and found[0] is meta and found[1] is shape
                and found[2] is is_recent):
            fragment = found[3]
        else:
            fragment = _fragment(meta, shape, is_recent)
            fragments[id(meta)] = (meta, shape, is_recent, fragment)
        lines.append(f"* {seq} FETCH ({fragment})\r\n")
    return "".join(lines)


def _block(view: SelectedMailbox, start: int, shape: tuple[FetchKind, ...],
           recent: AbstractSet[int]) -> bytes:
    """The lines of the `INDEX_BATCH` messages from sequence number `start` on, as kept in
    `_BLOCKS` when the same messages (equal metas: one tuple comparison, by identity
    first), the same \\Recent marks and the same item list were rendered there before."""
    stop = start - 1 + INDEX_BATCH
    metas = tuple(view.messages[start - 1:stop])
    uids = view.uids[start - 1:stop]
    marked = _NO_RECENT if not recent else frozenset(uids) & recent   # C loops, no Python
    key = (start, shape, id(metas[0]))      # the entry keeps metas[0], so its id stays
    found = _BLOCKS.get(key)
    if found is not None and found[1] == marked and found[0] == metas:
        return found[2]
    data = _render(view, range(start, stop + 1), shape, recent).encode()
    with _BLOCKS_LOCK:                      # FETCH runs on the loop and in worker threads
        if len(_BLOCKS) >= _BLOCKS_MAX:
            del _BLOCKS[next(iter(_BLOCKS))]        # the oldest
        _BLOCKS[key] = (metas, marked, data)
    return data


# One rendered fragment per MessageMeta object (the last item list asked for), keyed by its
# identity; the entry keeps the meta alive so the id stays its own. A STORE drops the
# entries of the metas it replaces; the cap bounds the rest (metas replaced elsewhere).
_FRAGMENTS: dict[int, tuple[MessageMeta, tuple[FetchKind, ...], bool, str]] = {}
_FRAGMENTS_MAX = 50_000
_SHAPES: dict[tuple[FetchKind, ...], tuple[FetchKind, ...]] = {}     # few: compare by `is`
_SHAPES_MAX = 256
# Whole blocks of lines of a range FETCH: (first seq, item list, id of the first meta) ->
# (the block's metas, its \Recent UIDs, the bytes). At most _BLOCKS_MAX (~55 KB each with
# FLAGS UID RFC822.SIZE: about 3.5 MB), the oldest dropped first; an entry whose messages
# changed is simply not found or not equal, and ages out.
_BLOCKS: dict[tuple[int, tuple[FetchKind, ...], int],
              tuple[tuple[MessageMeta, ...], frozenset[int], bytes]] = {}
_BLOCKS_MAX = 64
_BLOCKS_LOCK = threading.Lock()
_NO_RECENT: frozenset[int] = frozenset()


def forget_fragments(view: SelectedMailbox, seqs: list[int]) -> None:
    """Drop the rendered fragments of messages whose metas a STORE is about to replace."""
    messages, pop = view.messages, _FRAGMENTS.pop
    for seq in seqs:
        pop(id(messages[seq - 1]), None)


def _fragment(meta: MessageMeta, kinds: tuple[FetchKind, ...], recent: bool) -> str:
    items = []
    for kind in kinds:
        if kind is FetchKind.FLAGS:
            items.append(f"FLAGS ({render_flags(meta.flags, recent)})")
        elif kind is FetchKind.UID:
            items.append(f"UID {meta.uid}")
        elif kind is FetchKind.RFC822_SIZE:
            items.append(f"RFC822.SIZE {meta.size}")
        elif kind is FetchKind.MODSEQ:
            items.append(f"MODSEQ ({meta.modseq})")
        else:
            items.append(f"INTERNALDATE {internal_date(meta.internal_date)}")
    return " ".join(items)


def flags_lines(session: ImapSession, view: SelectedMailbox, seqs: list[int],
                modified: set[int], only: set[int] | None, uid: bool) -> bytes:
    """STORE's `* seq FETCH (FLAGS ...)` lines for `seqs` (their UIDs, ascending, as the
    view has them now), leaving out the UNCHANGEDSINCE refusals and, with `only`, what
    did not change. One format per message: STORE on 1:1000 answers 1,000 lines."""
    shape = "* %d FETCH ("
    if uid:
        shape += "UID %d "
    shape += "FLAGS (%s)"
    if session.condstore:
        shape += " MODSEQ (%d)"
    shape += ")\r\n"
    recent = view.recent if not session.rev2 else frozenset()
    messages = view.messages
    lines: list[str] = []
    for seq in seqs:
        meta = messages[seq - 1]
        number = meta.uid
        if number in modified or (only is not None and number not in only):
            continue
        text = render_flags(meta.flags, number in recent)
        if uid:
            values: tuple[int | str, ...] = (seq, number, text)
        else:
            values = (seq, text)
        lines.append(shape % ((*values, meta.modseq) if session.condstore else values))
    return "".join(lines).encode()
