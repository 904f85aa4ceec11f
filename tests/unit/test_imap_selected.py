"""The selected mailbox view: untagged updates from store snapshots (RFC 9051 7.5.1)."""

from __future__ import annotations

from appliance.imap.selected import (
    Exists,
    Expunge,
    FlagsChanged,
    Recent,
    SelectedMailbox,
    Vanished,
)
from appliance.storage.mailbox_api import FolderSnapshot, MessageMeta


def meta(uid: int, *flags: str, modseq: int = 1) -> MessageMeta:
    return MessageMeta(uid, frozenset(flags), modseq, 1_700_000_000.0, 100)


def snap(*messages: MessageMeta, uidnext: int | None = None, modseq: int | None = None,
         recent: frozenset[int] = frozenset()) -> FolderSnapshot:
    return FolderSnapshot(
        "INBOX", 7, uidnext or (max((m.uid for m in messages), default=0) + 1),
        modseq or max((m.modseq for m in messages), default=1), tuple(messages), recent)


def test_lookups() -> None:
    view = SelectedMailbox(snap(meta(3), meta(5), meta(9)))
    assert view.exists == 3
    assert [view.seq_of(u) for u in (3, 4, 5, 9, 10)] == [1, None, 2, 3, None]
    assert view.message_at(2).uid == 5


def test_nothing_changed_reports_nothing() -> None:
    first = snap(meta(1), meta(2))
    view = SelectedMailbox(first)
    assert view.refresh(snap(meta(1), meta(2)), allow_expunge=True) == []


def test_new_messages_give_exists_and_recent() -> None:
    view = SelectedMailbox(snap(meta(1)))
    updates = view.refresh(snap(meta(1), meta(2), meta(3), recent=frozenset({2, 3})),
                           allow_expunge=True)
    assert updates == [Exists(3), Recent(2)]
    assert list(view.uids) == [1, 2, 3]


def test_expunges_are_sent_as_current_sequence_numbers() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2), meta(3), meta(4)))
    updates = view.refresh(snap(meta(1), meta(3), modseq=2), allow_expunge=True)
    # Highest first, so each number is valid when the client reads it.
    assert updates == [Expunge(4), Expunge(2)]
    assert list(view.uids) == [1, 3]


def test_expunges_wait_while_fetch_store_search_are_answered() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2), meta(3)))
    held = view.refresh(snap(meta(1), meta(3), meta(4), modseq=2), allow_expunge=False)
    assert held == [Exists(4), Recent(0)]        # 1, 2 (gone, still shown), 3, 4
    assert view.exists == 4
    assert view.is_expunged(2)
    later = view.refresh(snap(meta(1), meta(3), meta(4), modseq=2), allow_expunge=True)
    assert later == [Expunge(2)]
    assert list(view.uids) == [1, 3, 4]
    assert not view.is_expunged(2)


def test_qresync_reports_vanished_uids() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2), meta(3)))
    updates = view.refresh(snap(meta(2), modseq=3), allow_expunge=True, qresync=True)
    assert updates == [Vanished((1, 3))]


def test_flag_changes_from_elsewhere_are_fetched_but_own_ones_are_not() -> None:
    view = SelectedMailbox(snap(meta(1), meta(2)))
    mine = meta(1, "\\Seen", modseq=2)
    view.apply_own((mine,))
    updates = view.refresh(snap(mine, meta(2, "\\Flagged", modseq=3)), allow_expunge=True)
    assert updates == [FlagsChanged(2, meta(2, "\\Flagged", modseq=3))]


def test_modseq_only_changes_matter_only_with_condstore() -> None:
    view = SelectedMailbox(snap(meta(1, "\\Seen")))
    assert view.refresh(snap(meta(1, "\\Seen", modseq=5)), allow_expunge=True) == []
    view = SelectedMailbox(snap(meta(1, "\\Seen")))
    assert view.refresh(snap(meta(1, "\\Seen", modseq=5)), allow_expunge=True,
                        condstore=True) == [FlagsChanged(1, meta(1, "\\Seen", modseq=5))]


def test_own_expunge_numbers() -> None:
    view = SelectedMailbox(snap(*(meta(u) for u in range(1, 6))))
    assert view.remove_own([2, 4]) == [4, 2]
    assert list(view.uids) == [1, 3, 5]


def test_views_on_one_folder_state_share_their_lists_until_they_diverge() -> None:
    """1,000 idle clients on a big INBOX must not hold 1,000 copies of it."""
    state = snap(meta(1), meta(2), meta(3))
    first, second = SelectedMailbox(state), SelectedMailbox(state)
    assert first.messages is second.messages
    assert first.uids is second.uids
    first.apply_own((meta(2, "\\Seen", modseq=2),))
    assert first.messages is not second.messages            # copied on write
    assert second.message_at(2).flags == frozenset()
    after = snap(meta(1), meta(2, "\\Seen", modseq=2), meta(3))
    first.refresh(after, allow_expunge=True)
    second.refresh(after, allow_expunge=True)
    assert first.messages is second.messages is after.messages   # shared again
