"""Training from Junk moves (spam/junk_trainer.py) against the real Maildir store:
MaildirStores hands the listener to every account, a MOVE or COPY into Junk teaches spam, a
MOVE back out unlearns it and teaches ham, a move to Trash teaches nothing, and the IMAP
side never waits for training."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import load_settings
from appliance.spam.classifier import Model
from appliance.spam.junk_trainer import JunkTrainer, start_junk_trainer
from appliance.spam.store import GLOBAL, TokenStore, db_path
from appliance.spam.tokenizer import tokenize
from appliance.spam.training import Learner
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox
from appliance.storage.mailbox_api import INBOX, JunkMove
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.stores import MaildirStores

ADDRESS = "alice@example.test"


class World:
    def __init__(self, root: Path) -> None:
        directory = SqliteDirectory(open_database(root))
        directory.add_domain("example.test")
        account = directory.add_account(ADDRESS, "x")
        self.mailbox = Mailbox(account.id, ADDRESS, account.maildir)
        self.stores = MaildirStores(root, directory)
        self.delivery = MaildirStore(root)
        self.tokens = TokenStore(db_path(root))
        self.trainer = JunkTrainer(self.stores, Learner(self.tokens), queue_size=10)
        self.stores.add_junk_listener(self.trainer.listener)

    def deliver(self, subject: str, body: str) -> None:
        self.delivery.deliver(f"From: x@sender.example\nTo: {ADDRESS}\nSubject: {subject}\n"
                              f"Message-ID: <{subject}@sender.example>\n\n{body}\n".encode(),
                              [self.mailbox])

    def wait_learned(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while self.trainer.learned < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.trainer.learned == count


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    made.trainer.start()
    yield made
    made.trainer.close()
    made.stores.close()
    made.tokens.close()


def inbox_uids(world: World) -> list[int]:
    return [m.uid for m in world.stores.open(ADDRESS).sync(INBOX).messages]


def test_move_into_junk_and_back_out(world: World) -> None:
    world.deliver("one", "cheap pills lottery winner")
    world.deliver("two", "meeting minutes agenda")
    mail = world.stores.open(ADDRESS)           # opened after the listener was added
    first, _ = inbox_uids(world)
    message = mail.read(INBOX, first)
    mail.move(INBOX, [first], "Junk")
    world.wait_learned(1)
    assert world.tokens.model(ADDRESS) == Model(1, 0)
    assert world.tokens.model(GLOBAL) == Model(0, 0)
    counts = world.tokens.lookup(ADDRESS, tokenize(message))[1]
    assert counts["lottery"].spam == 1
    (junk_uid,) = [m.uid for m in mail.sync("Junk").messages]
    mail.move("Junk", [junk_uid], INBOX)         # "not spam": unlearn, learn as ham
    world.wait_learned(2)
    assert world.tokens.model(ADDRESS) == Model(0, 1)
    counts = world.tokens.lookup(ADDRESS, tokenize(message))[1]
    assert counts["lottery"].spam == 0
    assert counts["lottery"].ham == 1


def test_copy_into_junk_teaches_the_copied_messages(world: World) -> None:
    world.deliver("a", "first message about watches")
    world.deliver("b", "second message about casinos")
    world.deliver("c", "third message about the choir")
    mail = world.stores.open(ADDRESS)
    uids = inbox_uids(world)
    mail.move(INBOX, [uids[2]], "Junk")
    world.wait_learned(1)
    mail.copy(INBOX, uids[:2], "Junk")
    world.wait_learned(3)
    assert world.tokens.model(ADDRESS) == Model(3, 0)
    counts = world.tokens.lookup(ADDRESS, ["watches", "casinos", "choir"])[1]
    assert {t: c.spam for t, c in counts.items()} == {"watches": 1, "casinos": 1, "choir": 1}


def test_moving_junk_to_trash_teaches_nothing(world: World) -> None:
    world.deliver("t", "delete me")
    mail = world.stores.open(ADDRESS)
    mail.move(INBOX, inbox_uids(world), "Junk")
    world.wait_learned(1)
    mail.move("Junk", [m.uid for m in mail.sync("Junk").messages], "Trash")
    time.sleep(0.2)
    assert world.trainer.learned == 1
    assert world.tokens.model(ADDRESS) == Model(1, 0)


def test_a_full_queue_drops_lessons_without_blocking(tmp_path: Path) -> None:
    made = World(tmp_path)                       # the thread is not started: nothing drains
    for i in range(15):
        made.deliver(f"m{i}", f"body {i}")
    mail = made.stores.open(ADDRESS)
    started = time.monotonic()
    for uid in inbox_uids(made):
        mail.move(INBOX, [uid], "Junk")
    assert time.monotonic() - started < 5
    assert made.trainer._queue.qsize() == 10
    made.trainer.start()
    made.wait_learned(10)
    made.trainer.close()
    made.stores.close()


def test_a_listener_failure_never_reaches_the_store(world: World) -> None:
    world.trainer.listener(JunkMove("nobody@example.test", True, INBOX, (1,)))
    world.trainer.listener(JunkMove(ADDRESS, False, "No Such Folder", (7,)))
    world.deliver("x", "still fine")
    world.stores.open(ADDRESS).move(INBOX, inbox_uids(world), "Junk")
    world.wait_learned(1)


def test_start_junk_trainer_follows_the_setting(tmp_path: Path) -> None:
    directory = SqliteDirectory(open_database(tmp_path))
    stores = MaildirStores(tmp_path, directory)
    off = load_settings(None, {"MAILSTEAD_PATHS__DATA_DIR": str(tmp_path),
                               "MAILSTEAD_SPAM__ENABLED": "false"})
    start_junk_trainer(off, stores)()
    assert not db_path(tmp_path).exists()
    on = load_settings(None, {"MAILSTEAD_PATHS__DATA_DIR": str(tmp_path)})
    stop = start_junk_trainer(on, stores)
    assert db_path(tmp_path).exists()
    stop()


def test_a_broken_database_leaves_the_engine_without_training(tmp_path: Path) -> None:
    stores = MaildirStores(tmp_path, SqliteDirectory(open_database(tmp_path)))
    (tmp_path / "spam").mkdir()
    db_path(tmp_path).write_bytes(b"this is not an SQLite database" * 100)
    settings = load_settings(None, {"MAILSTEAD_PATHS__DATA_DIR": str(tmp_path)})
    start_junk_trainer(settings, stores)()            # logs, does not raise
    assert stores._junk_listeners == []
