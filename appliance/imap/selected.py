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
from dataclasses import dataclass, replace

from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta


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
        self.messages: list[MessageMeta] = list(snapshot.messages)
        self.uids: list[int] = [m.uid for m in self.messages]
        self.recent: set[int] = set(snapshot.recent)
        self.gone: set[int] = set()      # expunged in the store, not yet told to the client
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

    # -- changes made by this session --------------------------------------------------------

    def apply_own(self, changed: tuple[MessageMeta, ...]) -> None:
        """Take this session's STORE results so the next refresh does not report them."""
        for meta in changed:
            seq = self.seq_of(meta.uid)
            if seq is not None:
                self.messages[seq - 1] = meta
                self.highest_modseq = max(self.highest_modseq, meta.modseq)

    def remove_own(self, uids: list[int]) -> list[int]:
        """Drop UIDs this session expunged itself; returns their sequence numbers in the
        order the EXPUNGE lines must be sent (each number as it is after the ones before)."""
        seqs: list[int] = []
        for uid in sorted(uids, reverse=True):      # highest first: no renumbering needed
            seq = self.seq_of(uid)
            if seq is not None:
                seqs.append(seq)
                del self.uids[seq - 1]
                del self.messages[seq - 1]
                self.recent.discard(uid)
                self.gone.discard(uid)
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
            return updates
        self._seen = _token(snapshot)
        current = {m.uid: m for m in snapshot.messages}
        self.gone |= {uid for uid in self.uids if uid not in current}
        if allow_expunge and self.gone:
            updates += self._report_expunges(qresync)
        updates += self._flag_changes(current, condstore)
        added = [m for m in snapshot.messages if m.uid > (self.uids[-1] if self.uids else 0)]
        self.recent |= set(snapshot.recent)
        if added:
            self.messages += added
            self.uids += [m.uid for m in added]
            updates.append(Exists(len(self.uids)))
            updates.append(Recent(len(self.recent)))
        self.uidnext = max(self.uidnext, snapshot.uidnext)
        self.highest_modseq = max(self.highest_modseq, snapshot.highest_modseq)
        return updates

    def _report_expunges(self, qresync: bool) -> list[Update]:
        gone = sorted(self.gone)
        if qresync:
            self.remove_own(gone)
            return [Vanished(tuple(gone))]
        return [Expunge(seq) for seq in self.remove_own(gone)]

    def _flag_changes(self, current: dict[int, MessageMeta], condstore: bool) -> list[Update]:
        updates: list[Update] = []
        for index, old in enumerate(self.messages):
            new = current.get(old.uid)
            if new is None or new == old:
                continue
            if new.flags != old.flags or (condstore and new.modseq != old.modseq):
                updates.append(FlagsChanged(index + 1, new))
            self.messages[index] = replace(old, flags=new.flags, modseq=new.modseq)
        return updates


def _token(snapshot: FolderSnapshot) -> tuple[int, int, int]:
    return snapshot.highest_modseq, snapshot.uidnext, len(snapshot.messages)

