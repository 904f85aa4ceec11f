"""A model-based test of MaildirAccount: random APPEND/STORE/COPY/MOVE/EXPUNGE, changes by
another tool, a second opener and reopening, checked against a plain dict model."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from appliance.storage.mailbox_api import INBOX, FlagOperation
from appliance.storage.maildir.account import MaildirAccount

FOLDERS = (INBOX, "A/Ä", "Junk")
FLAGS = st.frozensets(st.sampled_from(["\\Seen", "\\Flagged", "\\Deleted", "k1", "$k2"]),
                      max_size=3)
PICK = st.lists(st.integers(0, 30), max_size=4)
BODY = b"Subject: model\n\nbody\n"


class AccountModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="maildir-model-"))
        self.account = MaildirAccount("alice@example.test", self.dir)
        self.account.create_folder("A/Ä")
        self.model: dict[str, dict[int, frozenset[str]]] = {f: {} for f in FOLDERS}
        self.uidnext = dict.fromkeys(FOLDERS, 1)
        self.modseq = dict.fromkeys(FOLDERS, 0)

    def teardown(self) -> None:
        self.account.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pick(self, folder: str, picks: list[int]) -> list[int]:
        uids = sorted(self.model[folder])
        return sorted({uids[p % len(uids)] for p in picks}) if uids else []

    def add(self, folder: str, flags: frozenset[str]) -> int:
        uid = self.uidnext[folder]
        self.uidnext[folder] += 1
        self.model[folder][uid] = flags
        return uid

    @rule(folder=st.sampled_from(FOLDERS), flags=FLAGS)
    def append(self, folder: str, flags: frozenset[str]) -> None:
        result = self.account.append(folder, BODY, flags)
        assert result.target_uids == (self.add(folder, flags),)

    @rule(folder=st.sampled_from(FOLDERS), picks=PICK, flags=FLAGS,
          operation=st.sampled_from(FlagOperation))
    def store(self, folder: str, picks: list[int], flags: frozenset[str],
              operation: FlagOperation) -> None:
        uids = self.pick(folder, picks)
        self.account.store_flags(folder, uids, operation, flags)
        for uid in uids:
            old = self.model[folder][uid]
            self.model[folder][uid] = (old | flags if operation is FlagOperation.ADD else
                                       old - flags if operation is FlagOperation.REMOVE else
                                       flags)

    @rule(source=st.sampled_from(FOLDERS), goal=st.sampled_from(FOLDERS), picks=PICK,
          move=st.booleans())
    def copy_or_move(self, source: str, goal: str, picks: list[int], move: bool) -> None:
        uids = self.pick(source, picks)
        call = self.account.move if move else self.account.copy
        result = call(source, uids, goal)
        assert list(result.source_uids) == uids
        flags = [self.model[source][uid] for uid in uids]
        if move:
            for uid in uids:
                del self.model[source][uid]
        assert list(result.target_uids) == [self.add(goal, f) for f in flags]

    @rule(folder=st.sampled_from(FOLDERS))
    def expunge(self, folder: str) -> None:
        doomed = sorted(u for u, f in self.model[folder].items() if "\\Deleted" in f)
        assert self.account.expunge(folder) == doomed
        for uid in doomed:
            del self.model[folder][uid]

    @precondition(lambda self: self.model[INBOX])
    @rule(pick=st.integers(0, 30), remove=st.booleans())
    def other_tool(self, pick: int, remove: bool) -> None:
        """Another program toggles the F letter of a file, or deletes it."""
        uid = self.pick(INBOX, [pick])[0]
        self.account.sync(INBOX)
        path = self.account._state(INBOX).file_path(uid)
        if remove:
            os.unlink(path)
            del self.model[INBOX][uid]
            return
        base, _, letters = path.name.partition(":2,")
        toggled = letters.replace("F", "") if "F" in letters else "".join(sorted(letters + "F"))
        os.rename(path, path.with_name(f"{base}:2,{toggled}"))
        self.model[INBOX][uid] = self.model[INBOX][uid] ^ {"\\Flagged"}

    @rule()
    def reopen(self) -> None:
        self.account.close()
        self.account = MaildirAccount("alice@example.test", self.dir)

    @rule()
    def deliver(self) -> None:
        (self.dir / "new" / f"delivered.{self.uidnext[INBOX]}").write_bytes(BODY)
        self.add(INBOX, frozenset())

    @invariant()
    def matches_model(self) -> None:
        other = MaildirAccount("alice@example.test", self.dir)
        for folder in FOLDERS:
            snapshot = self.account.sync(folder)
            assert {m.uid: m.flags for m in snapshot.messages} == self.model[folder]
            assert snapshot.uidnext == self.uidnext[folder]
            assert snapshot.highest_modseq >= self.modseq[folder]
            self.modseq[folder] = snapshot.highest_modseq
            assert other.sync(folder).messages == snapshot.messages
        other.close()


TestAccountModel = AccountModel.TestCase
TestAccountModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
