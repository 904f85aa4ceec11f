"""Delivery into the Junk folder (the spam check's JUNK verdict): the message lands in the
account's `.Junk` Maildir++ folder, made on demand, and the account's store lists it there."""

from __future__ import annotations

from pathlib import Path

from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.folders import FOLDER_MARKER
from appliance.storage.maildir.store import MaildirStore

MESSAGE = b"Subject: cheap pills\n\nbuy now\n"


def test_junk_folder_is_made_on_demand_and_seen_by_the_account(tmp_path: Path) -> None:
    box = Mailbox(1, "ann@example.test", Path("mail/example.test/ann"))
    MaildirStore(tmp_path).deliver(MESSAGE, [box], folder="Junk")
    root = tmp_path / box.maildir
    assert (root / ".Junk" / FOLDER_MARKER).is_file()
    assert len(list((root / ".Junk" / "new").iterdir())) == 1
    assert list((root / "new").iterdir()) == []            # not in the INBOX
    account = MaildirAccount(box.address, root)
    try:
        junk = account.sync("Junk")
        assert len(junk.messages) == 1
        assert account.read("Junk", junk.messages[0].uid) == MESSAGE.replace(b"\n", b"\r\n")
        assert account.status("INBOX").messages == 0
    finally:
        account.close()


def test_junk_delivery_into_an_opened_account_and_several_mailboxes(tmp_path: Path) -> None:
    boxes = [Mailbox(i, f"u{i}@example.test", Path(f"mail/example.test/u{i}"))
             for i in (1, 2)]
    first = MaildirAccount(boxes[0].address, tmp_path / boxes[0].maildir)   # makes Junk
    try:
        assert first.sync("Junk").messages == ()
        MaildirStore(tmp_path).deliver(MESSAGE, boxes, folder="Junk")
        assert len(first.sync("Junk").messages) == 1
    finally:
        first.close()
    assert len(list((tmp_path / boxes[1].maildir / ".Junk" / "new").iterdir())) == 1
