"""Commands of the selected state (RFC 9051 6.4): FETCH, STORE, SEARCH, COPY/MOVE (RFC 6851),
EXPUNGE and UID EXPUNGE (RFC 4315), CLOSE, UNSELECT (RFC 3691), with the CONDSTORE/QRESYNC
parts (RFC 7162: CHANGEDSINCE, UNCHANGEDSINCE, MODSEQ, VANISHED).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from appliance.imap import fetch_lines as lines
from appliance.imap import responses as r
from appliance.imap import search_keys as k
from appliance.imap.commands import messages as s
from appliance.imap.commands.base import CommandError
from appliance.imap.fetch_items import FetchAttribute, FetchKind
from appliance.imap.fetch_response import (
    CACHE_KEYS,
    FetchItemError,
    MessageSource,
    fetch_line,
    needs_content,
    whole_message_names,
)
from appliance.imap.search_eval import SearchContext, esearch_data, saved_result
from appliance.imap.search_eval import search as run_search
from appliance.imap.search_view import views
from appliance.imap.selected import SelectedMailbox
from appliance.imap.sequence_set import STAR, NumberSet, SequenceSet
from appliance.imap.state import State
from appliance.storage.mailbox_api import AccountMail, FlagOperation

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

FETCH_BATCH = 64        # messages per yielded chunk


def _context(session: ImapSession) -> tuple[AccountMail, SelectedMailbox]:
    assert session.account is not None
    assert session.selected is not None
    return session.account, session.selected


def resolve(session: ImapSession, numbers: SequenceSet, uid: bool) -> list[int]:
    """The UIDs (ascending) a sequence set names in the current view."""
    view = session.selected
    assert view is not None
    return [view.uids[seq - 1] for seq in resolve_seqs(session, numbers, uid)]


def resolve_seqs(session: ImapSession, numbers: SequenceSet, uid: bool) -> list[int]:
    """The sequence numbers (ascending) a sequence set names in the current view."""
    view = session.selected
    assert view is not None
    saved = session.saved if isinstance(session.saved, NumberSet) else None
    if uid or numbers.saved:        # "$" holds UIDs whichever form uses it (RFC 5182)
        highest = view.uids[-1] if view.uids else 0
        wanted = numbers.resolve(highest, saved)
        if len(wanted) >= view.exists:      # most of the mailbox: test each UID
            return [seq for seq, u in enumerate(view.uids, start=1) if u in wanted]
        return [seq for seq in (view.seq_of(u) for u in wanted.select(view.uids))
                if seq is not None]
    _check_sequence_numbers(numbers, view.exists)
    wanted = numbers.resolve(view.exists, saved).clip(view.exists)
    if wanted.is_range(1, view.exists):      # 1:*, the usual resync: no set walk
        return list(range(1, view.exists + 1))
    return wanted.to_list()


def _check_sequence_numbers(numbers: SequenceSet, exists: int) -> None:
    """RFC 9051 9 (seq-number): a message sequence number above the number of messages,
    or "*" in an empty mailbox, is a client error (BAD), as Dovecot answers too."""
    ranges = numbers.ranges
    if not ranges:
        return
    if max(max(pair) for pair in ranges) > exists or (
            exists == 0 and any(STAR in pair for pair in ranges)):
        raise CommandError(None, r.BAD_SEQUENCE)


# -- FETCH -----------------------------------------------------------------------------------

def fetch(session: ImapSession, command: s.Fetch) -> Iterator[bytes]:
    account, view = _context(session)
    modifiers = command.modifiers
    if modifiers.changed_since is not None or any(
            a.kind is FetchKind.MODSEQ for a in command.attributes):
        session.condstore = True
    if modifiers.vanished and command.uid and modifiers.changed_since is not None:
        # RFC 7162 3.2.6: UIDs of the requested set expunged since CHANGEDSINCE.
        asked = command.sequence_set.resolve(max(view.uidnext - 1, 0))
        gone = [u for u in account.expunged_since(view.name, modifiers.changed_since)
                if u in asked]
        if gone:
            yield f"* VANISHED (EARLIER) {NumberSet.from_values(gone)}\r\n".encode()
    seqs = resolve_seqs(session, command.sequence_set, command.uid)
    if view.gone:
        seqs = [seq for seq in seqs if not view.is_expunged(view.uids[seq - 1])]
    if modifiers.changed_since is not None:
        seqs = [seq for seq in seqs if view.messages[seq - 1].modseq > modifiers.changed_since]
    _mark_seen(session, command, seqs)
    attributes = command.attributes
    if any(a.sets_seen for a in attributes) and not view.readonly and not any(
            a.kind is FetchKind.FLAGS for a in attributes):
        attributes = (*attributes, FetchAttribute(FetchKind.FLAGS))   # \Seen changed
    include_modseq = modifiers.changed_since is not None
    if not needs_content(attributes):
        yield from lines.index_only(session, view, seqs, attributes, command.uid,
                                    include_modseq)
        yield r.tagged_ok(command.tag, "FETCH " + r.DONE)
        return
    names = whole_message_names(attributes)
    if names is not None:
        yield from lines.whole_messages(session, seqs, attributes, names, command.uid,
                                       include_modseq, command.tag)
        return
    failed: FetchItemError | None = None
    batch: list[bytes] = []
    cached = _prefetch(account, view, seqs, attributes)
    for seq in seqs:
        meta = view.messages[seq - 1]
        try:
            source = _source(account, view.name, meta.uid, cached)
            batch.append(fetch_line(seq, meta, attributes, source,
                                    recent=session.is_recent(meta.uid), include_uid=command.uid,
                                    include_modseq=include_modseq, utf8=session.utf8))
        except KeyError:
            failed = failed or FetchItemError("EXPUNGEISSUED", r.EXPUNGE_ISSUED)
        except FetchItemError as err:
            failed = err
        if len(batch) >= FETCH_BATCH:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)
    if failed is not None:
        yield r.tagged_no(command.tag, str(failed), failed.code)
    else:
        yield r.tagged_ok(command.tag, "FETCH " + r.DONE)


def _seq(view: SelectedMailbox, uid: int) -> int:
    seq = view.seq_of(uid)
    assert seq is not None
    return seq


def _prefetch(account: AccountMail, view: SelectedMailbox, seqs: list[int],
              attributes: Sequence[FetchAttribute]) -> dict[str, dict[int, str]]:
    """Cached ENVELOPE/BODYSTRUCTURE/BODY values of all the messages, one query per item
    (a resync asks for them on every message)."""
    keys = [CACHE_KEYS[a.kind] for a in attributes if a.kind in CACHE_KEYS]
    if len(seqs) < 2 or not keys:
        return {}
    uids = [view.messages[seq - 1].uid for seq in seqs]
    return {key: account.get_cached_many(view.name, uids, key) for key in keys}


def _source(account: AccountMail, folder: str, uid: int,
            cached: dict[str, dict[int, str]]) -> MessageSource:
    def get_cached(key: str) -> str | None:
        known = cached.get(key)
        if known is not None:
            return known.get(uid)       # asked for all of them: absent means not cached
        return account.get_cached(folder, uid, key)
    return MessageSource(lambda: account.read(folder, uid), get_cached,
                         lambda key, value: account.put_cached(folder, uid, key, value))


def _mark_seen(session: ImapSession, command: s.Fetch, seqs: list[int]) -> None:
    """BODY[...] without PEEK (and RFC822, RFC822.TEXT) set \\Seen (RFC 9051 6.4.5)."""
    account, view = _context(session)
    if view.readonly or not any(a.sets_seen for a in command.attributes):
        return
    unseen = [view.messages[seq - 1].uid for seq in seqs
              if "\\Seen" not in view.messages[seq - 1].flags]
    if unseen:
        result = account.store_flags(view.name, unseen, FlagOperation.ADD,
                                     frozenset({"\\Seen"}))
        view.apply_own(result.changed)


# -- STORE -----------------------------------------------------------------------------------

def store(session: ImapSession, command: s.Store) -> Iterator[bytes]:
    account, view = _context(session)
    if view.readonly:
        yield r.tagged_no(command.tag, r.READ_ONLY, "READ-ONLY")
        return
    if command.unchanged_since is not None:
        session.condstore = True
    seqs = resolve_seqs(session, command.sequence_set, command.uid)
    view_uids = view.uids
    if view.gone:
        seqs = [seq for seq in seqs if not view.is_expunged(view_uids[seq - 1])]
    uids = [view_uids[seq - 1] for seq in seqs]
    flags = frozenset(f for f in command.flags if f.upper() != "\\RECENT")
    result = account.store_flags(view.name, uids, command.operation, flags,
                                 command.unchanged_since)
    if result.changed:
        lines.forget_fragments(view, seqs)
    view.apply_own(result.changed)
    modified = set(result.modified)
    if not command.silent or session.condstore:
        echo = lines.flags_lines(session, view, seqs, modified,
                                 {m.uid for m in result.changed} if command.silent else None,
                                 command.uid)
        if echo:
            yield echo
    if modified:
        numbers = (sorted(modified) if command.uid
                   else sorted(_seq(view, u) for u in modified))
        yield r.tagged_ok(command.tag, r.MODIFIED,
                          f"MODIFIED {NumberSet.from_values(numbers)}")
    else:
        yield r.tagged_ok(command.tag, "STORE " + r.DONE)


# -- SEARCH ----------------------------------------------------------------------------------

def search(session: ImapSession, command: s.Search) -> Iterator[bytes]:
    account, view = _context(session)
    program = command.program
    saved = session.saved if isinstance(session.saved, NumberSet) else None
    ctx = SearchContext(highest_seq=view.exists,
                        highest_uid=view.uids[-1] if view.uids else 0, saved=saved)
    matched = [m.uid for m in run_search(program.key, views(session, account, view), ctx)]
    numbers = matched if command.uid else [_seq(view, u) for u in matched]
    options = program.return_options
    uses_modseq = _uses_modseq(program.key)
    if uses_modseq:
        session.condstore = True
    if options is not None and "SAVE" in options:
        session.saved = saved_result(matched, options)
    if options is not None:
        data = esearch_data(numbers, options)
        if uses_modseq and numbers:
            data.append(("MODSEQ", str(max(view.message_at(_seq(view, u)).modseq
                                           for u in matched))))
        tag_part = f'(TAG "{command.tag}")'
        uid_part = " UID" if command.uid else ""
        pairs = "".join(f" {name} {value}" for name, value in data)
        if options != ("SAVE",):
            yield f"* ESEARCH {tag_part}{uid_part}{pairs}\r\n".encode()
    else:
        text = " ".join(map(str, numbers))
        if uses_modseq and numbers:
            highest = max(view.message_at(_seq(view, u)).modseq for u in matched)
            text += f" (MODSEQ {highest})"
        yield f"* SEARCH{' ' if text else ''}{text}\r\n".encode()
    yield r.tagged_ok(command.tag, "SEARCH " + r.DONE)


def _uses_modseq(key: object) -> bool:
    if isinstance(key, k.ModSeqKey):
        return True
    if isinstance(key, k.Not):
        return _uses_modseq(key.key)
    if isinstance(key, k.Or):
        return _uses_modseq(key.left) or _uses_modseq(key.right)
    if isinstance(key, k.And):
        return any(_uses_modseq(part) for part in key.keys)
    return False


# -- COPY / MOVE -----------------------------------------------------------------------------

def copy(session: ImapSession, command: s.Copy) -> Iterator[bytes]:
    account, view = _context(session)
    if command.move and view.readonly:
        yield r.tagged_no(command.tag, r.READ_ONLY, "READ-ONLY")
        return
    uids = [u for u in resolve(session, command.sequence_set, command.uid)
            if not view.is_expunged(u)]
    if not uids:
        yield r.tagged_ok(command.tag, r.NO_MESSAGES)
        return
    operation = account.move if command.move else account.copy
    result = operation(view.name, uids, command.mailbox)
    code = (f"COPYUID {result.uidvalidity} {NumberSet.from_values(result.source_uids)} "
            f"{NumberSet.from_values(result.target_uids)}")
    verb = "MOVE" if command.move else "COPY"
    if not command.move:
        yield r.tagged_ok(command.tag, f"{verb} {r.DONE}", code)
        return
    yield r.untagged_ok("Moved", code)         # RFC 6851 4.3
    yield from _expunged(session, list(result.source_uids))
    yield r.tagged_ok(command.tag, f"{verb} {r.DONE}")


def _expunged(session: ImapSession, uids: list[int]) -> Iterator[bytes]:
    _account, view = _context(session)
    if "QRESYNC" in session.enabled:
        present = [u for u in uids if view.seq_of(u) is not None]
        view.remove_own(present)
        if present:
            yield f"* VANISHED {NumberSet.from_values(present)}\r\n".encode()
        return
    lines = [f"* {seq} EXPUNGE\r\n".encode() for seq in view.remove_own(uids)]
    if lines:
        yield b"".join(lines)


# -- EXPUNGE, CLOSE, UNSELECT ----------------------------------------------------------------

def expunge(session: ImapSession, command: s.Expunge) -> Iterator[bytes]:
    account, view = _context(session)
    if view.readonly:
        yield r.tagged_no(command.tag, r.READ_ONLY, "READ-ONLY")
        return
    only = (resolve(session, command.uids, uid=True) if command.uids is not None else None)
    removed = account.expunge(view.name, only)
    yield from _expunged(session, removed)
    yield r.tagged_ok(command.tag, "EXPUNGE " + r.DONE)


def close(session: ImapSession, command: s.Close) -> Iterator[bytes]:
    account, view = _context(session)
    if not view.readonly:
        account.expunge(view.name, None)        # silently (RFC 9051 6.4.1)
    _deselect(session)
    yield r.tagged_ok(command.tag, "CLOSE " + r.DONE)


def unselect(session: ImapSession, command: s.Unselect) -> Iterator[bytes]:
    _deselect(session)
    yield r.tagged_ok(command.tag, "UNSELECT " + r.DONE)


def _deselect(session: ImapSession) -> None:
    session.selected = None
    session.state = State.AUTHENTICATED
