"""Training from the user's own sorting: messages moved or copied into the Junk folder over
IMAP are learned as spam for that account, messages moved out of it (not to Trash) as ham.

The store calls `JunkTrainer.listener` inside the IMAP command (`AccountMail.
add_junk_listener`), so it only notes which messages to read and puts that on a bounded
queue; one background thread reads them and learns. A full queue drops the event with a
log line (training is advice, the IMAP command must not wait for it); a failure is logged,
never raised into the store.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.core import log
from appliance.settings import Settings
from appliance.spam.store import TokenStore, db_path
from appliance.spam.tokenizer import TokenLimits
from appliance.spam.training import Learner
from appliance.storage.mailbox_api import JunkMove, MailStores
from appliance.storage.maildir.stores import MaildirStores

STOP_WAIT = 10.0      # seconds `close` waits for the thread to finish the message at hand


@dataclass(frozen=True)
class Lesson:
    """Messages to learn: where they are now."""

    account: str
    folder: str
    uids: tuple[int, ...]
    is_spam: bool


def lesson_for(event: JunkMove) -> Lesson:
    """What to learn from `event`: the store names where the copies are now (in Junk when
    marked as spam, in the folder they went to when marked as not spam) by their UIDs."""
    return Lesson(event.account, event.folder, event.uids, event.to_junk)


class JunkTrainer:
    """A bounded queue of lessons and the thread that learns them."""

    def __init__(self, stores: MailStores, learner: Learner, queue_size: int = 100) -> None:
        self._stores = stores
        self._learner = learner
        self._queue: queue.Queue[Lesson | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="spam-trainer", daemon=True)
        self.learned = 0       # messages learned since start (for tests and stats)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop after the lesson at hand; lessons still queued are dropped."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            self._queue.put(None, timeout=STOP_WAIT)
        except queue.Full:
            return
        self._thread.join(STOP_WAIT)

    def listener(self, event: JunkMove) -> None:
        """The store's junk listener: never blocks on the queue, never raises."""
        try:
            lesson = lesson_for(event)
            self._queue.put_nowait(lesson)
        except queue.Full:
            log.event("spam.train_dropped", account=event.account, count=len(event.uids))
        except Exception as exc:
            log.error("spam.train_failed", exc, account=event.account)

    def _run(self) -> None:
        while True:
            lesson = self._queue.get()
            if lesson is None:
                return
            try:
                self._teach(lesson)
            except Exception as exc:
                log.error("spam.train_failed", exc, account=lesson.account,
                          folder=lesson.folder)

    def _teach(self, lesson: Lesson) -> None:
        mail = self._stores.open(lesson.account)
        counted = 0
        for uid in lesson.uids:
            try:
                message = mail.read(lesson.folder, uid)
            except KeyError:
                continue                 # expunged meanwhile: nothing to learn from
            self._learner.learn(lesson.account, message, lesson.is_spam)
            counted += 1
        self.learned += counted
        log.event("spam.trained", account=lesson.account, spam=lesson.is_spam,
                  count=counted)


def start_junk_trainer(settings: Settings, stores: MaildirStores) -> Callable[[], None]:
    """Train each account's model from its Junk moves in `stores` (the IMAP server's);
    returns the function that stops the trainer (a no-op when `spam.enabled` is off)."""
    if not settings.get_bool("spam.enabled"):
        return lambda: None
    try:
        tokens = TokenStore(db_path(settings.data_dir))
    except (OSError, sqlite3.Error) as exc:     # a broken spam database must not stop mail
        log.error("spam.trainer_unavailable", exc)
        return lambda: None
    limits = TokenLimits.from_settings(settings)
    trainer = JunkTrainer(stores, Learner(tokens, limits), settings.get_int("spam.train_queue"))
    trainer.start()
    stores.add_junk_listener(trainer.listener)

    def stop() -> None:
        trainer.close()
        tokens.close()
    return stop
