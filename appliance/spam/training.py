"""Learning messages: one message into one model (unlearning the other class first, as
SpamAssassin's `sa-learn` does), the IMAP Junk-move trainer, and corpus directories for
`mailstead spam train`."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator
from pathlib import Path

from appliance.spam import store
from appliance.spam.store import TokenStore
from appliance.spam.tokenizer import DEFAULT_LIMITS, TokenLimits, tokenize


class Learned(enum.Enum):
    """What learning one message did."""

    LEARNED = "learned"          # new to this model
    RELEARNED = "relearned"      # it had been learned as the other class: unlearned first
    ALREADY = "already"          # it had been learned as this class: nothing to do


def message_digest(message: bytes, limit: int) -> str:
    """The key that recognises a message learned before: its first `limit` octets (what
    the tokenizer reads) with LF line ends, so line ends do not matter (the store hands out
    CRLF, corpus files often have LF) and neither does how much of a big message the
    caller read (the Junk trainer reads it whole, `read_message` only its start)."""
    return hashlib.sha256(message.replace(b"\r\n", b"\n")[:limit]).hexdigest()


class Learner:
    """Teaches messages to the models in one `TokenStore`."""

    def __init__(self, tokens: TokenStore, limits: TokenLimits = DEFAULT_LIMITS) -> None:
        self.tokens = tokens
        self.limits = limits

    def learn(self, account: str, message: bytes, is_spam: bool) -> Learned:
        """Learn `message` as spam or ham into `account`'s model (`store.GLOBAL`: the
        global one). A message learned before as the other class is unlearned from it
        first, so moving a message into Junk and out again leaves it counted once, as ham.
        """
        digest = message_digest(message, self.limits.max_parse)
        found = tokenize(message, self.limits)
        with self.tokens.writing() as conn:
            before = store.seen_as(conn, account, digest)
            if before is is_spam:
                return Learned.ALREADY
            if before is not None:
                store.add_counts(conn, account, found, before, -1)
            store.add_counts(conn, account, found, is_spam, +1)
            store.mark_seen(conn, account, digest, is_spam)
        return Learned.LEARNED if before is None else Learned.RELEARNED

    def forget(self, account: str, message: bytes) -> bool:
        """Unlearn `message` from `account`'s model; False when it was never learned."""
        digest = message_digest(message, self.limits.max_parse)
        found = tokenize(message, self.limits)
        with self.tokens.writing() as conn:
            before = store.seen_as(conn, account, digest)
            if before is None:
                return False
            store.add_counts(conn, account, found, before, -1)
            conn.execute("DELETE FROM seen WHERE account = ? AND message = ?",
                         (account, digest))
        return True


def corpus_files(directory: Path) -> Iterator[Path]:
    """The messages of a corpus directory: a Maildir (its cur/ and new/) or a directory
    of `.eml` files, in name order.

    Raises:
        ValueError: when `directory` is neither.
    """
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    if (directory / "cur").is_dir() or (directory / "new").is_dir():
        for sub in ("cur", "new"):
            if (directory / sub).is_dir():
                yield from sorted(p for p in (directory / sub).iterdir() if p.is_file())
        return
    found = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".eml")
    if not found:
        raise ValueError(f"{directory} is neither a Maildir nor a directory of .eml files")
    yield from found


def read_message(path: Path, limit: int) -> bytes:
    """Enough of a message file for `limit` octets with LF line ends (twice as many: CRLF
    ends halve), which is all the tokenizer and `message_digest` look at."""
    with path.open("rb") as handle:
        return handle.read(2 * limit)
