"""The AccountMail contract (storage/mailbox_api.py), written against the Protocol only.

Every store implementation runs this suite: add its factory to `FACTORIES`. A factory takes
a fresh directory and the quota limits and returns an `AccountMail` for one account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.storage.mailbox_api import (
    DEFAULT_FOLDERS,
    INBOX,
    AccountMail,
    FlagOperation,
    FolderExistsError,
    FolderInUseError,
    InvalidFolderNameError,
    JunkMove,
    MailboxError,
    NoSuchFolderError,
    OverQuotaError,
    SpecialUse,
)
from appliance.storage.maildir.account import MaildirAccount

Factory = Callable[[Path, int, "int | None"], AccountMail]
ADDRESS = "alice@example.test"
MESSAGE = b"From: bob@example.test\nSubject: hello\n\nline one\nline two\n"
CRLF_MESSAGE = MESSAGE.replace(b"\n", b"\r\n")


def maildir_factory(directory: Path, quota_bytes: int, messages_limit: int | None) -> AccountMail:
    return MaildirAccount(ADDRESS, directory / "mail", quota_bytes, messages_limit)


FACTORIES: dict[str, Factory] = {"maildir": maildir_factory}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Factory:
    return FACTORIES[request.param]


@pytest.fixture
def mail(factory: Factory, tmp_path: Path) -> Iterator[AccountMail]:
    account = factory(tmp_path, 0, None)
    yield account
    account.close()


def names(mail: AccountMail) -> list[str]:
    return [f.name for f in mail.folders()]


def uids(mail: AccountMail, folder: str) -> list[int]:
    return [m.uid for m in mail.sync(folder).messages]


def flags_of(mail: AccountMail, folder: str, uid: int) -> frozenset[str]:
    [meta] = [m for m in mail.sync(folder).messages if m.uid == uid]
    return meta.flags


# -- folders ---------------------------------------------------------------------------------

def test_new_account_has_inbox_and_special_use_folders(mail: AccountMail) -> None:
    folders = mail.folders()
    assert folders[0].name == INBOX
    assert names(mail) == [INBOX, *sorted(name for name, _ in DEFAULT_FOLDERS)]
    uses = {f.name: f.special_use for f in folders}
    for name, use in DEFAULT_FOLDERS:
        assert uses[name] is use


def test_create_with_parents_list_and_children(mail: AccountMail) -> None:
    mail.create_folder("Projects/2026/Q1")
    assert {"Projects", "Projects/2026", "Projects/2026/Q1"} <= set(names(mail))
    info = {f.name: f for f in mail.folders()}
    assert info["Projects"].has_children
    assert not info["Projects/2026/Q1"].has_children
    with pytest.raises(FolderExistsError):
        mail.create_folder("Projects/2026")
    with pytest.raises(FolderExistsError):
        mail.create_folder("inbox")


def test_create_with_special_use(mail: AccountMail) -> None:
    mail.create_folder("Old Spam", SpecialUse.JUNK)
    info = {f.name: f for f in mail.folders()}
    assert info["Old Spam"].special_use is SpecialUse.JUNK


def test_folder_names_are_utf8_and_case_sensitive_except_inbox(mail: AccountMail) -> None:
    mail.create_folder("Entwürfe & Pläne")
    mail.create_folder("entwürfe & pläne")
    mail.create_folder("台北.Reisen~2026")
    assert {"Entwürfe & Pläne", "entwürfe & pläne", "台北.Reisen~2026"} <= set(names(mail))
    mail.append("台北.Reisen~2026", MESSAGE)
    assert len(mail.sync("台北.Reisen~2026").messages) == 1
    assert mail.sync("iNbOx").name == INBOX


@pytest.mark.parametrize("bad", ["", "/", "A//B", "A/", "/A", ".", "..", "A/../B", "A/./B",
                                 "nul\x00", "tab\there", "del\x7f", "c1\x85", "x" * 300,
                                 "/".join(["d"] * 17)])
def test_invalid_folder_names_refused(mail: AccountMail, bad: str) -> None:
    with pytest.raises(InvalidFolderNameError) as caught:
        mail.create_folder(bad)
    assert caught.value.code == "CANNOT"


def test_missing_folder_errors(mail: AccountMail) -> None:
    for call in (lambda: mail.sync("Nope"), lambda: mail.status("Nope"),
                 lambda: mail.append("Nope", MESSAGE), lambda: mail.delete_folder("Nope"),
                 lambda: mail.rename_folder("Nope", "Other")):
        with pytest.raises(NoSuchFolderError) as caught:
            call()
        assert caught.value.code == "NONEXISTENT"
    mail.append(INBOX, MESSAGE)
    with pytest.raises(NoSuchFolderError):
        mail.copy(INBOX, [1], "Nope")


def test_delete_folder_keeps_children_and_refuses_inbox(mail: AccountMail) -> None:
    mail.create_folder("A/B")
    mail.append("A", MESSAGE)
    mail.delete_folder("A")
    assert "A" not in names(mail)
    assert "A/B" in names(mail)
    with pytest.raises(MailboxError):
        mail.delete_folder(INBOX)
    mail.create_folder("A")
    assert mail.sync("A").messages == ()


def test_recreated_folder_gets_new_uidvalidity(mail: AccountMail) -> None:
    mail.create_folder("Once")
    first = mail.sync("Once").uidvalidity
    mail.delete_folder("Once")
    mail.create_folder("Once")
    assert mail.sync("Once").uidvalidity != first


def test_rename_folder_with_children_keeps_messages(mail: AccountMail) -> None:
    mail.create_folder("Old/Child")
    mail.append("Old", MESSAGE, frozenset({"\\Seen"}))
    mail.append("Old/Child", MESSAGE)
    before = mail.sync("Old")
    mail.rename_folder("Old", "New/Name")
    assert "Old" not in names(mail)
    assert "Old/Child" not in names(mail)
    assert {"New", "New/Name", "New/Name/Child"} <= set(names(mail))
    after = mail.sync("New/Name")
    assert [(m.uid, m.flags) for m in after.messages] == [
        (m.uid, m.flags) for m in before.messages]
    assert uids(mail, "New/Name/Child") == [1]
    with pytest.raises(FolderExistsError):
        mail.rename_folder("New/Name", "Trash")
    with pytest.raises(MailboxError):
        mail.rename_folder("New", "New/Name/Child/Deeper")


def test_rename_inbox_moves_its_messages(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    mail.append(INBOX, MESSAGE, frozenset({"\\Flagged"}))
    mail.rename_folder(INBOX, "Old Mail")
    assert mail.sync(INBOX).messages == ()
    moved = mail.sync("Old Mail").messages
    assert len(moved) == 2
    assert [m.flags for m in moved] == [frozenset(), frozenset({"\\Flagged"})]


def test_subscriptions(mail: AccountMail) -> None:
    mail.create_folder("News")
    mail.set_subscribed("News", True)
    mail.set_subscribed(INBOX, True)
    subscribed = {f.name for f in mail.folders() if f.subscribed}
    assert subscribed == {INBOX, "News"}
    mail.set_subscribed("News", False)
    assert {f.name for f in mail.folders() if f.subscribed} == {INBOX}


# -- reading and appending -------------------------------------------------------------------

def test_append_read_crlf_size_and_uids(mail: AccountMail) -> None:
    first = mail.append(INBOX, MESSAGE, frozenset({"\\Seen", "$Label1"}), 1_700_000_000.0)
    second = mail.append(INBOX, CRLF_MESSAGE)
    snapshot = mail.sync(INBOX)
    assert first.target_uids == (1,)
    assert second.target_uids == (2,)
    assert first.uidvalidity == snapshot.uidvalidity == second.uidvalidity
    assert snapshot.uidnext == 3
    assert [m.uid for m in snapshot.messages] == [1, 2]
    one, two = snapshot.messages
    assert one.flags == {"\\Seen", "$Label1"}
    assert two.flags == frozenset()
    assert one.size == two.size == len(CRLF_MESSAGE)
    assert one.internal_date == pytest.approx(1_700_000_000.0)
    assert mail.read(INBOX, 1) == CRLF_MESSAGE
    assert mail.read(INBOX, 2) == CRLF_MESSAGE
    with pytest.raises(KeyError):
        mail.read(INBOX, 3)


def test_recent_is_claimed_once(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    assert mail.status(INBOX).recent == 1
    assert mail.sync(INBOX, claim_recent=True).recent == {1}
    assert mail.sync(INBOX, claim_recent=True).recent == frozenset()
    mail.append(INBOX, MESSAGE, frozenset({"\\Recent"}))
    assert mail.sync(INBOX).recent == frozenset()
    assert mail.sync(INBOX, claim_recent=True).recent == {2}
    assert "\\Recent" not in flags_of(mail, INBOX, 2)


def test_status_counts(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE, frozenset({"\\Seen"}))
    mail.append(INBOX, MESSAGE, frozenset({"\\Deleted"}))
    mail.append(INBOX, MESSAGE)
    status = mail.status(INBOX)
    assert (status.messages, status.unseen, status.deleted, status.uidnext) == (3, 2, 1, 4)
    assert status.size == 3 * len(CRLF_MESSAGE)
    assert status.highest_modseq == mail.sync(INBOX).highest_modseq


def test_changed_token(mail: AccountMail) -> None:
    changed, token = mail.changed(INBOX, None)
    assert changed
    assert mail.changed(INBOX, token) == (False, token)
    mail.append(INBOX, MESSAGE)
    changed, token2 = mail.changed(INBOX, token)
    assert changed
    assert token2 != token
    mail.store_flags(INBOX, [1], FlagOperation.ADD, frozenset({"\\Seen"}))
    assert mail.changed(INBOX, token2)[0]


def test_cache_values(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    assert mail.get_cached(INBOX, 1, "bodystructure") is None
    mail.put_cached(INBOX, 1, "bodystructure", "(TEXT PLAIN)")
    assert mail.get_cached(INBOX, 1, "bodystructure") == "(TEXT PLAIN)"
    mail.remove(INBOX, [1])
    assert mail.get_cached(INBOX, 1, "bodystructure") is None


def test_cache_values_many(mail: AccountMail) -> None:
    for _ in range(3):
        mail.append(INBOX, MESSAGE)
    mail.put_cached(INBOX, 1, "envelope", "(one)")
    mail.put_cached(INBOX, 3, "envelope", "(three)")
    mail.put_cached(INBOX, 2, "body", "(two)")
    assert mail.get_cached_many(INBOX, [1, 2, 3, 4], "envelope") == {1: "(one)", 3: "(three)"}
    assert mail.get_cached_many(INBOX, [], "envelope") == {}
    with pytest.raises(NoSuchFolderError):
        mail.get_cached_many("Nowhere", [1], "envelope")


def test_headers_many(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    mail.append(INBOX, b"Subject: no body")
    mail.append(INBOX, MESSAGE)
    mail.remove(INBOX, [3])
    header = b"From: bob@example.test\r\nSubject: hello\r\n\r\n"
    expected = {1: header, 2: b"Subject: no body"}
    assert mail.headers_many(INBOX, [1, 2, 3]) == expected
    assert mail.headers_many(INBOX, [2, 1]) == expected       # again, from the cache
    with pytest.raises(NoSuchFolderError):
        mail.headers_many("Nowhere", [1])


# -- STORE, CONDSTORE ------------------------------------------------------------------------

def test_store_operations_and_modseq(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    mail.append(INBOX, MESSAGE)
    start = mail.sync(INBOX).highest_modseq
    result = mail.store_flags(INBOX, [1, 2], FlagOperation.ADD, frozenset({"\\Seen", "work"}))
    assert [m.uid for m in result.changed] == [1, 2]
    assert all(m.modseq > start for m in result.changed)
    assert mail.sync(INBOX).highest_modseq == result.changed[0].modseq
    result = mail.store_flags(INBOX, [1], FlagOperation.REMOVE, frozenset({"work"}))
    assert result.changed[0].flags == {"\\Seen"}
    result = mail.store_flags(INBOX, [2], FlagOperation.REPLACE, frozenset({"\\Answered"}))
    assert result.changed[0].flags == {"\\Answered"}
    before = mail.sync(INBOX).highest_modseq
    unchanged = mail.store_flags(INBOX, [2], FlagOperation.ADD, frozenset({"\\Answered"}))
    assert unchanged.changed == ()
    assert mail.sync(INBOX).highest_modseq == before
    assert flags_of(mail, INBOX, 1) == {"\\Seen"}


def test_store_unchanged_since(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    mail.append(INBOX, MESSAGE)
    mail.store_flags(INBOX, [2], FlagOperation.ADD, frozenset({"\\Flagged"}))
    modseqs = {m.uid: m.modseq for m in mail.sync(INBOX).messages}
    result = mail.store_flags(INBOX, [1, 2], FlagOperation.ADD, frozenset({"\\Seen"}),
                              unchanged_since=modseqs[1])
    assert result.modified == (2,)
    assert [m.uid for m in result.changed] == [1]
    assert "\\Seen" not in flags_of(mail, INBOX, 2)


def test_many_keywords(mail: AccountMail) -> None:
    keywords = frozenset(f"kw{i:02d}" for i in range(40))
    mail.append(INBOX, MESSAGE, keywords)
    assert flags_of(mail, INBOX, 1) == keywords
    mail.store_flags(INBOX, [1], FlagOperation.REMOVE, frozenset({"kw39", "kw00"}))
    assert flags_of(mail, INBOX, 1) == keywords - {"kw39", "kw00"}


def test_invalid_flags_refused(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    for bad in ({"two words"}, {"\\Unknown"}, {""}):
        with pytest.raises(MailboxError):
            mail.store_flags(INBOX, [1], FlagOperation.ADD, frozenset(bad))


# -- COPY, MOVE, EXPUNGE ---------------------------------------------------------------------

def test_copy_keeps_flags_and_reports_copyuid(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE, frozenset({"\\Seen", "todo"}), 1_600_000_000.0)
    mail.append(INBOX, MESSAGE)
    mail.create_folder("Saved")
    mail.append("Saved", MESSAGE)
    result = mail.copy(INBOX, [2, 1, 99], "Saved")
    assert result.source_uids == (1, 2)
    assert result.target_uids == (2, 3)
    assert result.uidvalidity == mail.sync("Saved").uidvalidity
    copied = mail.sync("Saved").messages
    assert copied[1].flags == {"\\Seen", "todo"}
    assert copied[1].internal_date == pytest.approx(1_600_000_000.0)
    assert mail.read("Saved", 2) == CRLF_MESSAGE
    assert uids(mail, INBOX) == [1, 2]
    mail.store_flags("Saved", [2], FlagOperation.REMOVE, frozenset({"\\Seen"}))
    assert "\\Seen" in flags_of(mail, INBOX, 1)


def test_move_expunges_sources(mail: AccountMail) -> None:
    for _ in range(3):
        mail.append(INBOX, MESSAGE)
    before = mail.sync(INBOX).highest_modseq
    result = mail.move(INBOX, [1, 3], "Archive")
    assert result.source_uids == (1, 3)
    assert result.target_uids == (1, 2)
    assert uids(mail, INBOX) == [2]
    assert uids(mail, "Archive") == [1, 2]
    assert mail.expunged_since(INBOX, before) == [1, 3]
    assert mail.sync(INBOX).highest_modseq > before


def test_expunge_only_deleted_and_uid_expunge(mail: AccountMail) -> None:
    for _ in range(4):
        mail.append(INBOX, MESSAGE)
    mail.store_flags(INBOX, [1, 2, 4], FlagOperation.ADD, frozenset({"\\Deleted"}))
    modseq = mail.sync(INBOX).highest_modseq
    assert mail.expunge(INBOX, [2, 3]) == [2]
    assert mail.expunge(INBOX) == [1, 4]
    assert uids(mail, INBOX) == [3]
    assert mail.expunged_since(INBOX, modseq) == [1, 2, 4]
    assert mail.expunged_since(INBOX, mail.sync(INBOX).highest_modseq) == []
    assert mail.expunge(INBOX) == []
    with pytest.raises(KeyError):
        mail.read(INBOX, 1)


def test_remove_ignores_flags(mail: AccountMail) -> None:
    for _ in range(3):
        mail.append(INBOX, MESSAGE)
    assert mail.remove(INBOX, [3, 1, 7]) == [1, 3]
    assert uids(mail, INBOX) == [2]
    assert mail.append(INBOX, MESSAGE).target_uids == (4,)   # UIDs are never reused


# -- quotas ----------------------------------------------------------------------------------

def test_quota_counts_all_folders(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    mail.append("Sent", MESSAGE)
    usage = mail.quota()
    assert (usage.storage_used, usage.messages_used) == (2 * len(CRLF_MESSAGE), 2)
    assert usage.storage_limit is None
    assert usage.messages_limit is None


def test_storage_quota_refuses_append_and_copy_not_move(factory: Factory,
                                                        tmp_path: Path) -> None:
    mail = factory(tmp_path, 3 * len(CRLF_MESSAGE), None)
    mail.append(INBOX, MESSAGE)
    mail.append(INBOX, MESSAGE)
    assert mail.quota().storage_limit == 3 * len(CRLF_MESSAGE)
    with pytest.raises(OverQuotaError) as caught:
        mail.copy(INBOX, [1, 2], "Archive")
    assert caught.value.code == "OVERQUOTA"
    mail.move(INBOX, [1, 2], "Archive")
    mail.append(INBOX, MESSAGE)
    with pytest.raises(OverQuotaError):
        mail.append(INBOX, MESSAGE)
    assert mail.quota().messages_used == 3
    mail.close()


def test_message_quota(factory: Factory, tmp_path: Path) -> None:
    mail = factory(tmp_path, 0, 2)
    mail.append(INBOX, MESSAGE)
    mail.append(INBOX, MESSAGE)
    with pytest.raises(OverQuotaError):
        mail.append("Drafts", MESSAGE)
    assert mail.quota().messages_limit == 2
    mail.remove(INBOX, [1])
    mail.append("Drafts", MESSAGE)
    mail.close()


# -- junk, locks -----------------------------------------------------------------------------

def test_junk_events(mail: AccountMail) -> None:
    seen: list[JunkMove] = []
    mail.add_junk_listener(seen.append)
    junk = next(f.name for f in mail.folders() if f.special_use is SpecialUse.JUNK)
    trash = next(f.name for f in mail.folders() if f.special_use is SpecialUse.TRASH)
    for _ in range(3):
        mail.append(INBOX, MESSAGE)
    mail.move(INBOX, [1, 2], junk)
    assert seen == [JunkMove(ADDRESS, True, junk, (1, 2))]      # the copies, in Junk
    mail.copy(junk, [1], INBOX)
    assert seen[1] == JunkMove(ADDRESS, False, INBOX, (4,))
    mail.move(junk, [2], trash)
    mail.copy(INBOX, [3], "Archive")
    assert len(seen) == 2


def test_exclusive_lock(mail: AccountMail, factory: Factory, tmp_path: Path) -> None:
    other = factory(tmp_path, 0, None)
    with mail.exclusive("pop3"):
        with pytest.raises(FolderInUseError) as caught, other.exclusive("pop3"):
            pass
        assert caught.value.code == "INUSE"
        with other.exclusive("other purpose"):
            pass
    with other.exclusive("pop3"):
        pass
    other.close()


def test_read_many_in_order_with_none_for_expunged(mail: AccountMail) -> None:
    for i in range(4):
        mail.append(INBOX, MESSAGE + b"%d\n" % i, frozenset({"\\Deleted"}) if i == 1 else
                    frozenset())
    assert mail.expunge(INBOX) == [2]
    read = list(mail.read_many(INBOX, [4, 2, 1, 99, 3]))
    assert [uid for uid, _ in read] == [4, 2, 1, 99, 3]
    assert dict(read) == {4: mail.read(INBOX, 4), 2: None, 1: mail.read(INBOX, 1), 99: None,
                          3: mail.read(INBOX, 3)}
    assert dict(read)[3] == CRLF_MESSAGE + b"2\r\n"
    assert list(mail.read_many(INBOX, [])) == []
    with pytest.raises(NoSuchFolderError):
        next(iter(mail.read_many("Nowhere", [1])))


def test_read_many_across_batches_and_flag_changes(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    while len(uids(mail, INBOX)) < 300:                 # a few COPYs: 1, 2, 4, ... 512
        mail.copy(INBOX, uids(mail, INBOX), INBOX)
    everything = uids(mail, INBOX)
    mail.store_flags(INBOX, everything[::3], FlagOperation.ADD, frozenset({"\\Flagged"}))
    read = list(mail.read_many(INBOX, everything))     # renames may be under way meanwhile
    assert [uid for uid, _ in read] == everything
    assert all(content == CRLF_MESSAGE for _, content in read)


def test_try_lock_never_waits_and_keeps_other_threads_out(mail: AccountMail) -> None:
    mail.append(INBOX, MESSAGE)
    assert mail.try_lock()
    try:
        assert mail.read(INBOX, 1) == CRLF_MESSAGE          # the holder's calls still run
        other: list[bool] = []
        reader = threading.Thread(target=lambda: other.append(mail.try_lock()))
        reader.start()
        reader.join(5)
        assert other == [False]                              # at once, not after a wait
        synced = threading.Event()

        def sync_then_tell() -> None:
            mail.sync(INBOX)
            synced.set()

        waiting = threading.Thread(target=sync_then_tell)
        waiting.start()
        assert not synced.wait(0.2)                          # another thread's call waits
    finally:
        mail.unlock()
    assert synced.wait(5)
    waiting.join(5)
    taken: list[bool] = []

    def take_and_give() -> None:
        taken.append(mail.try_lock())
        mail.unlock()

    thread = threading.Thread(target=take_and_give)
    thread.start()
    thread.join(5)
    assert taken == [True]
