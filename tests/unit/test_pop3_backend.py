"""The POP3 backend over a real Maildir store: what the store says becomes the core's results
(no such account, a maildrop in use, a message expunged by IMAP meanwhile, the lock let go)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from appliance.auth.guard import LoginGuard
from appliance.pop3.actions import (
    MaildropAnswer,
    MaildropProblem,
    MessageAnswer,
    OpenMaildrop,
    ReadMessage,
    RemoveAnswer,
    RemoveMessages,
)
from appliance.pop3.backend import Pop3Backend
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.mailbox_api import INBOX, FlagOperation
from appliance.storage.maildir.stores import MaildirStores

ADDRESS = "alice@example.test"
HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
BODY = b"Subject: x\n\nbody\n"


def test_store_answers_reach_the_core_and_the_lock_is_let_go(tmp_path: Path) -> None:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    directory.add_account(ADDRESS, HASH)
    stores = MaildirStores(tmp_path, directory)
    try:
        with ThreadPoolExecutor(2) as executor:
            # The guard is only asked for logins, which this test does not make.
            backend = Pop3Backend(cast(LoginGuard, None), stores, executor)
            asyncio.run(_sessions(backend, stores))
    finally:
        stores.close()


async def _sessions(backend: Pop3Backend, stores: MaildirStores) -> None:
    mail = stores.open(ADDRESS)
    for _ in range(2):
        mail.append(INBOX, BODY)
    first, second = backend.session("192.0.2.1"), backend.session("192.0.2.2")
    assert await first.perform(OpenMaildrop("nobody@example.test")) == MaildropAnswer(
        problem=MaildropProblem.PERMANENT)
    opened = await first.perform(OpenMaildrop(ADDRESS))
    assert isinstance(opened, MaildropAnswer)
    assert opened.snapshot is not None, opened.problem
    gone, kept = (m.uid for m in opened.snapshot.messages)
    assert await second.perform(OpenMaildrop(ADDRESS)) == MaildropAnswer(
        problem=MaildropProblem.IN_USE)
    mail.store_flags(INBOX, [gone], FlagOperation.ADD, frozenset({"\\Deleted"}))
    mail.expunge(INBOX)                         # what an IMAP client does meanwhile
    assert await first.perform(ReadMessage(gone)) == MessageAnswer(gone=True)
    assert await first.perform(ReadMessage(kept)) == MessageAnswer(BODY.replace(b"\n",
                                                                                b"\r\n"))
    assert await first.perform(RemoveMessages((kept,))) == RemoveAnswer(ok=True)
    first.close()
    assert mail.sync(INBOX).messages == ()
    again = await second.perform(OpenMaildrop(ADDRESS))     # the first let go of the lock
    assert isinstance(again, MaildropAnswer)
    assert again.snapshot is not None, again.problem
    second.close()
