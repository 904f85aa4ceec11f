"""Quota on delivery: the reply rule, what a Maildir holds as delivery counts it (index plus
new/), the Deliverer refusing before anything is stored or queued, and the directory
handing each mailbox its quota."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.core.addresses import parse_address
from appliance.core.errors import DeliveryError
from appliance.outbound.spool import Spool
from appliance.pipeline.deliver import Deliverer, quota_reply
from appliance.pipeline.route import Accepted
from appliance.smtp import replies
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox, RecipientStatus, Resolution
from appliance.storage.mailbox_api import INBOX
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.usage import delivery_totals

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
MESSAGE = b"Subject: hi\r\n\r\n" + b"z" * 180 + b"\r\n"          # 197 octets
FULL = Mailbox(1, "full@example.test", Path("mail/example.test/full"), quota_bytes=500)
FREE = Mailbox(2, "free@example.test", Path("mail/example.test/free"))


@pytest.mark.parametrize(("used", "quota", "size", "expected"), [
    (10**9, 0, 10**9, None),                    # no quota
    (0, 500, 500, None),                        # exactly full after it: fits
    (1, 500, 500, replies.MAILBOX_FULL),
    (500, 500, 1, replies.MAILBOX_FULL),        # full: nothing more (RCPT asks for 1)
    (0, 500, 501, replies.LARGER_THAN_QUOTA),   # can never fit: permanent
    (400, 500, 99, None),
])
def test_quota_reply(used: int, quota: int, size: int, expected: str | None) -> None:
    assert quota_reply(used, quota, size) == expected


def test_usage_counts_new_mail_and_the_index(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    root = store.maildir(FULL)
    assert store.totals_for_delivery(FULL)[0] == 0                 # no Maildir yet
    store.deliver(MESSAGE.replace(b"\r\n", b"\n"), [FULL])
    store.deliver(MESSAGE.replace(b"\r\n", b"\n"), [FULL])
    assert store.totals_for_delivery(FULL)[0] == 2 * len(MESSAGE)  # W= in the names
    (root / "new" / "1.by-hand.host").write_bytes(b"Subject: x\n\ny\n")   # no sizes: its
    assert delivery_totals(root)[0] == 2 * len(MESSAGE) + 14       # file size (LF) until indexed
    account = MaildirAccount(FULL.address, root)                # sync: new/ -> cur/ + index
    assert len(account.sync(INBOX).messages) == 3
    assert list((root / "new").iterdir()) == []
    assert delivery_totals(root)[0] == 2 * len(MESSAGE) + 17 == account.usage_for_delivery()[0]
    store.deliver(MESSAGE.replace(b"\r\n", b"\n"), [FULL])
    assert delivery_totals(root)[0] == 3 * len(MESSAGE) + 17       # index + the new one
    account.close()


def make(tmp_path: Path) -> tuple[Deliverer, Spool, MaildirStore]:
    store = MaildirStore(tmp_path)
    spool = Spool(tmp_path / "queue")
    return Deliverer(store, spool, ThreadPoolExecutor(2)), spool, store


def test_full_mailbox_refuses_the_whole_message_before_anything_is_written(
        tmp_path: Path) -> None:
    deliverer, spool, store = make(tmp_path)
    store.deliver(b"Subject: filler\n\n" + b"f" * 400 + b"\n", [FULL])
    recipients = [Accepted("full@example.test", Resolution(RecipientStatus.DELIVER, (FULL,))),
                  Accepted("free@example.test",
                           Resolution(RecipientStatus.DELIVER, (FREE,), ("x@remote.test",)))]
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(deliverer.accept(MESSAGE, "s@example.org", recipients))
    assert caught.value.reply == replies.MAILBOX_FULL
    assert caught.value.temporary
    assert spool.messages() == []                               # nothing queued
    assert not (tmp_path / FREE.maildir).exists()               # nor stored
    assert len(list((store.maildir(FULL) / "new").iterdir())) == 1
    spool.close()


def test_quota_refusal_at_rcpt(tmp_path: Path) -> None:
    deliverer, spool, store = make(tmp_path)
    alias = Resolution(RecipientStatus.DELIVER, (FREE, FULL))
    assert deliverer.quota_refusal(alias) is None
    assert deliverer.quota_refusal(alias, size=501) == replies.LARGER_THAN_QUOTA
    store.deliver(MESSAGE.replace(b"\r\n", b"\n"), [FULL])
    room = 500 - len(MESSAGE)
    assert deliverer.quota_refusal(alias, size=room + 1) == replies.MAILBOX_FULL
    assert deliverer.quota_refusal(alias, size=room) is None
    store.deliver(b"x" * room, [FULL])
    assert deliverer.quota_refusal(alias) == replies.MAILBOX_FULL   # any member full
    assert deliverer.quota_refusal(Resolution(RecipientStatus.DELIVER, (FREE,))) is None
    asyncio.run(deliverer.accept(MESSAGE, "s@example.org",
                                 [Accepted("free@example.test",
                                           Resolution(RecipientStatus.DELIVER, (FREE,)))]))
    spool.close()


def test_directory_resolution_carries_the_quota(tmp_path: Path) -> None:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    directory.add_account("alice@example.test", HASH, quota_bytes=1234)
    directory.add_account("bob@example.test", HASH)
    directory.add_alias("team@example.test", "alice@example.test")
    directory.add_alias("team@example.test", "bob@example.test")
    team = directory.resolve(parse_address("team@example.test"))
    assert sorted((m.address, m.quota_bytes) for m in team.mailboxes) == [
        ("alice@example.test", 1234), ("bob@example.test", 0)]
    directory.set_quota("alice@example.test", 99)
    alice = directory.resolve(parse_address("alice@example.test"))
    assert [m.quota_bytes for m in alice.mailboxes] == [99]      # not the memo's old answer
