"""The selected mailbox as one session sees it, and the untagged updates that keep it in step.

A session shows its client a view of the folder: message sequence numbers, UIDs, flags,
modseqs. The store's `FolderSnapshot` is the truth; after each command (and during IDLE) the
session refreshes from a new snapshot and this module works out what the client must be
told (pymap's `selected.py`): EXPUNGE (or VANISHED once QRESYNC is enabled, RFC 7162 3.2.10),
EXISTS, RECENT and FETCH (FLAGS ...) for flags changed by someone else.

RFC 9051 7.5.1: EXPUNGE must not be sent while responding to FETCH, STORE or SEARCH (their
non-UID forms), or when no command is in progress, because the client's sequence numbers
would shift under it. Then the expunged messages stay in the view (`allow_expunge=False`) and
are reported at the next command that allows it; new messages are still announced.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta

_NONE: frozenset[int] = frozenset()     # one empty set for every view (each costs 216 B)


@dataclass(frozen=True)
class Expunge:
    """`* n EXPUNGE`: sequence numbers as they are when the line is read, in order."""

    seq: int


@dataclass(frozen=True)
class Vanished:
    """`* VANISHED uids` (QRESYNC: replaces EXPUNGE)."""

    uids: tuple[int, ...]


@dataclass(frozen=True)
class Exists:
    count: int


@dataclass(frozen=True)
class Recent:
    count: int


@dataclass(frozen=True)
class FlagsChanged:
    """`* seq FETCH (FLAGS (...) UID n [MODSEQ (m)])` for a change made elsewhere."""

    seq: int
    message: MessageMeta


Update = Expunge | Vanished | Exists | Recent | FlagsChanged


class SelectedMailbox:
    """One session's view of its selected folder (sequence numbers are 1-based)."""

    def __init__(self, snapshot: FolderSnapshot, readonly: bool = False) -> None:
        self.name = snapshot.name
        self.readonly = readonly
        self.uidvalidity = snapshot.uidvalidity
        self.uidnext = snapshot.uidnext
        self.highest_modseq = snapshot.highest_modseq
        # Shared with every other session on the folder (the store hands out one tuple per
        # folder state) until this view diverges: 1,000 clients idling in a 10,000-message
        # INBOX then hold one copy, not 1,000 (copy-on-write in `_own`).
        self.messages: Sequence[MessageMeta] = snapshot.messages
        self.uids: Sequence[int] = shared_uids(snapshot.messages)
        # Sets are replaced, never changed in place, so a view shares the snapshot's (and
        # an empty one) until something is recent or expunged for it.
        self.recent: AbstractSet[int] = snapshot.recent or _NONE
        self.gone: AbstractSet[int] = _NONE     # expunged elsewhere, not yet told
        self._seen = _token(snapshot)

    # -- look-ups ----------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        """The sequence number of `uid`, or None when it is not in the view."""
        index = bisect.bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def message_at(self, seq: int) -> MessageMeta:
        return self.messages[seq - 1]

    def is_expunged(self, uid: int) -> bool:
        """Expunged by someone else but still in this view (RFC 9051 7.5.1)."""
        return uid in self.gone

    def _own(self) -> tuple[list[MessageMeta], list[int]]:
        """This view's own lists, copied from the shared ones before the first change."""
        if not isinstance(self.messages, list):
            self.messages = list(self.messages)
        if not isinstance(self.uids, list):
            self.uids = list(self.uids)
        return self.messages, self.uids

    def _share(self, snapshot: FolderSnapshot, same: bool = False) -> None:
        """Back to the shared tuples once the view equals the store's state again (`same`:
        the caller knows this view's UIDs are the snapshot's, so they need no new pass)."""
        if not self.gone and len(self.uids) == len(snapshot.messages):
            self.messages = snapshot.messages
            self.uids = shared_uids(snapshot.messages, self.uids if same else None)

    # -- changes made by this session --------------------------------------------------------

    def apply_own(self, changed: Sequence[MessageMeta]) -> None:
        """Take this session's STORE results (ascending UID, one new MODSEQ) so the next
        refresh does not report them.

        When that MODSEQ is the one right after the last the view saw, nobody else changed
        the folder in between (every change takes the next MODSEQ, store contract), so the
        view moves its token on: the refresh after our own STORE on 1,000 messages then
        takes the no-change path instead of comparing the whole folder."""
        if not changed:
            return
        messages, uids = self._own()
        index = 0
        for meta in changed:
            index = bisect.bisect_left(uids, meta.uid, index)
            if index < len(uids) and uids[index] == meta.uid:
                messages[index] = meta
        modseq = changed[-1].modseq
        if modseq == self._seen[0] + 1 and all(m.modseq == modseq for m in changed):
            self._seen = (modseq, self._seen[1], self._seen[2])
        self.highest_modseq = max(self.highest_modseq, modseq)

    def remove_own(self, uids: list[int]) -> list[int]:
        """Drop UIDs this session expunged itself; returns their sequence numbers in the
        order the EXPUNGE lines must be sent (each number as it is after the ones before)."""
        seqs: list[int] = []
        for uid in sorted(uids, reverse=True):      # highest first: no renumbering needed
            seq = self.seq_of(uid)
            if seq is not None:
                seqs.append(seq)
                messages, own_uids = self._own()
                del own_uids[seq - 1]
                del messages[seq - 1]
        removed = frozenset(uids)
        if not self.recent.isdisjoint(removed):
            self.recent = self.recent - removed
        if not self.gone.isdisjoint(removed):
            self.gone = self.gone - removed
        return seqs

    # -- changes made elsewhere --------------------------------------------------------------

    def refresh(self, snapshot: FolderSnapshot, *, allow_expunge: bool,
                qresync: bool = False, condstore: bool = False) -> list[Update]:
        """The updates to send for `snapshot`, and the view moved to it.

        Args:
            allow_expunge: False while answering FETCH, STORE or SEARCH (non-UID forms).
            qresync: report expunges as VANISHED (RFC 7162 3.2.10).
            condstore: also report modseq-only changes (FETCH FLAGS carry MODSEQ then,
                RFC 7162 3.2.4).
        """
        updates: list[Update] = []
        if _token(snapshot) == self._seen:
            # Every flag change and expunge bumps HIGHESTMODSEQ and every new message UIDNEXT
            # (store contract), so nothing new: only expunges held back before may be due.
            if allow_expunge and self.gone:
                updates += self._report_expunges(qresync)
            if isinstance(self.uids, list):     # own changes only: share the store's again
                self._share(snapshot, same=True)
            return updates
        seen_modseq = self._seen[0]
        self._seen = _token(snapshot)
        current = shared_uid_set(snapshot.messages)
        vanished = {uid for uid in self.uids if uid not in current}
        if vanished:
            self.gone = self.gone | vanished
        if allow_expunge and self.gone:
            updates += self._report_expunges(qresync)
        updates += self._flag_changes(snapshot, seen_modseq, condstore)
        added = [m for m in snapshot.messages if m.uid > (self.uids[-1] if self.uids else 0)]
        if not snapshot.recent <= self.recent:
            self.recent = self.recent | snapshot.recent
        if added:
            messages, uids = self._own()
            messages += added
            uids += [m.uid for m in added]
            updates.append(Exists(len(self.uids)))
            updates.append(Recent(len(self.recent)))
        self.uidnext = max(self.uidnext, snapshot.uidnext)
        self.highest_modseq = max(self.highest_modseq, snapshot.highest_modseq)
        self._share(snapshot)
        return updates

    def _report_expunges(self, qresync: bool) -> list[Update]:
        gone = sorted(self.gone)
        if qresync:
            self.remove_own(gone)
            return [Vanished(tuple(gone))]
        return [Expunge(seq) for seq in self.remove_own(gone)]

    def _flag_changes(self, snapshot: FolderSnapshot, seen_modseq: int,
                      condstore: bool) -> list[Update]:
        """FETCH FLAGS for messages whose MODSEQ moved past what this view had seen (every
        flag change bumps it), compared with what the view shows."""
        updates: list[Update] = []
        for new in snapshot.messages:
            if new.modseq <= seen_modseq:
                continue
            seq = self.seq_of(new.uid)
            if seq is None:
                continue
            old = self.messages[seq - 1]
            if new == old:
                continue
            if new.flags != old.flags or (condstore and new.modseq != old.modseq):
                updates.append(FlagsChanged(seq, new))
            messages, _uids = self._own()
            messages[seq - 1] = old._replace(flags=new.flags, modseq=new.modseq)
        return updates


class _Shared:
    """The UIDs of one folder state, for all views on it; the set only when first asked."""

    __slots__ = ("_set", "messages", "uids")

    def __init__(self, messages: tuple[MessageMeta, ...], uids: tuple[int, ...]) -> None:
        self.messages = messages        # kept alive, so its id() stays this entry's key
        self.uids = uids
        self._set: frozenset[int] | None = None

    @property
    def uid_set(self) -> frozenset[int]:
        if self._set is None:
            self._set = frozenset(self.uids)
        return self._set


_SHARED: dict[int, _Shared] = {}
# Each entry keeps a folder state's tuple (and its MessageMeta objects) alive: only the few
# states that sessions are on right now are worth sharing; a miss costs one pass to rebuild.
_SHARED_MAX = 16
_SHARED_LOCK = threading.Lock()


def _shared(messages: tuple[MessageMeta, ...], known: Sequence[int] | None = None) -> _Shared:
    """The shared entry of one folder state (keyed by the tuple's identity); `known`: its
    UIDs, when the caller has them."""
    found = _SHARED.get(id(messages))
    if found is None or found.messages is not messages:
        uids = tuple(known) if known is not None else tuple(m.uid for m in messages)
        with _SHARED_LOCK:      # sessions refresh in many worker threads: evict under a lock
            if len(_SHARED) >= _SHARED_MAX:
                _SHARED.pop(next(iter(_SHARED), 0), None)
            found = _SHARED[id(messages)] = _Shared(messages, uids)
    return found


def shared_uids(messages: tuple[MessageMeta, ...],
                known: Sequence[int] | None = None) -> tuple[int, ...]:
    return _shared(messages, known).uids


def shared_uid_set(messages: tuple[MessageMeta, ...]) -> frozenset[int]:
    return _shared(messages).uid_set


def _token(snapshot: FolderSnapshot) -> tuple[int, int, int]:
    return snapshot.highest_modseq, snapshot.uidnext, len(snapshot.messages)

