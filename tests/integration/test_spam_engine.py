"""The spam check and the Junk-move trainer in the real engine (EngineProcess): with the
global model trained on the synthetic corpus, spam sent over SMTP lands in Junk with
`X-Spam-*` headers, ham in INBOX; a score over the reject threshold is refused with
`550 5.7.1`; an IMAP MOVE into Junk (imaplib) trains that account's own model and a MOVE
back out turns the lesson into ham."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.smtp import replies
from appliance.spam.classifier import Model
from appliance.spam.store import GLOBAL, TokenStore, db_path
from appliance.spam.tokenizer import tokenize
from appliance.spam.training import Learner, corpus_files
from harness.engine import EngineProcess
from harness.imap import ssl_client
from harness.smtp_wire import Reply, greeted
from harness.submission import transaction

CORPUS = Path(__file__).parent.parent / "data" / "spam"
DOMAIN = "example.test"
SENDER = "someone@example.org"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
SMALL_MODELS = {"spam__enabled": True, "spam__min_spam": 5, "spam__min_ham": 5}


def corpus(kind: str) -> list[bytes]:
    return [p.read_bytes() for p in corpus_files(CORPUS / kind)]


def trained_engine(data_dir: Path, **settings: Any) -> EngineProcess:
    """An engine whose global model learned 25 spam and 25 ham of the corpus."""
    engine = EngineProcess(data_dir, **SMALL_MODELS, **settings)
    tokens = TokenStore(db_path(data_dir))
    learner = Learner(tokens)
    for message in corpus("spam")[:25]:
        learner.learn(GLOBAL, message, True)
    for message in corpus("ham")[:25]:
        learner.learn(GLOBAL, message, False)
    tokens.close()
    engine.start()
    engine.add_domain(DOMAIN)
    engine.add_account(ALICE)
    engine.add_account(BOB)
    return engine


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = trained_engine(tmp_path_factory.mktemp("spam") / "data")
    yield engine
    assert engine.stop() == 0, engine.log_text()[-3000:]


def send(engine: EngineProcess, content: bytes, recipients: list[str]) -> Reply:
    with greeted(engine.smtp_port) as wire:
        return transaction(wire, SENDER, recipients, content)


def folder_messages(engine: EngineProcess, address: str, folder: str) -> list[bytes]:
    root = engine.maildir(address) / (f".{folder}" if folder != "INBOX" else "")
    return [p.read_bytes() for sub in ("new", "cur") if (root / sub).is_dir()
            for p in sorted((root / sub).iterdir())]


def with_id(message: bytes, marker: str) -> bytes:
    """The corpus message with a Message-ID of its own (tests find it by that)."""
    head, _, body = message.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"message-id:")]
    return b"\r\n".join([*lines, f"Message-ID: <{marker}@test.example>".encode()]) + \
        b"\r\n\r\n" + body


def find(messages: list[bytes], marker: str) -> email.message.Message:
    for raw in messages:
        if marker.encode() in raw:
            return email.message_from_bytes(raw)
    raise AssertionError(f"{marker} not delivered there")


def test_spam_lands_in_junk_with_spam_headers(mx: EngineProcess) -> None:
    reply = send(mx, with_id(corpus("spam")[26], "spam-26"), [ALICE])
    assert reply.code == 250, reply.lines
    parsed = find(folder_messages(mx, ALICE, "Junk"), "spam-26")
    assert parsed["X-Spam-Status"].startswith("Yes, score=7.0 required=5.0 tests=BAYES_999")
    assert parsed["X-Spam-Score"] == "7.0"
    assert "global model" in parsed["X-Spam-Report"]
    assert not any(b"spam-26" in m for m in folder_messages(mx, ALICE, "INBOX"))


def test_ham_lands_in_the_inbox(mx: EngineProcess) -> None:
    reply = send(mx, with_id(corpus("ham")[27], "ham-27"), [ALICE, BOB])
    assert reply.code == 250, reply.lines
    for address in (ALICE, BOB):
        parsed = find(folder_messages(mx, address, "INBOX"), "ham-27")
        assert parsed["X-Spam-Status"].startswith("No, score=-2.0 required=5.0 tests=BAYES_00")
        assert parsed["X-Spam-Score"] == "-2.0"


def test_a_score_over_the_reject_threshold_is_refused(tmp_path: Path) -> None:
    engine = trained_engine(tmp_path / "data", spam__reject_threshold="6.5")
    try:
        reply = send(engine, with_id(corpus("spam")[28], "spam-28"), [BOB])
        assert reply.code == 550
        assert reply.lines[-1] == replies.SPAM_REJECTED
        assert not any(b"spam-28" in m for folder in ("INBOX", "Junk")
                       for m in folder_messages(engine, BOB, folder))
        assert "BAYES_999" in engine.log_text()     # the log says why, the client does not
        ham = send(engine, with_id(corpus("ham")[28], "ham-28"), [BOB])
        assert ham.code == 250
    finally:
        assert engine.stop() == 0, engine.log_text()[-3000:]


def wait_model(path: Path, account: str, wanted: Model) -> None:
    tokens = TokenStore(path)
    try:
        deadline = time.monotonic() + 15
        while tokens.model(account) != wanted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tokens.model(account) == wanted
    finally:
        tokens.close()


def test_imap_move_into_junk_trains_the_account(mx: EngineProcess) -> None:
    message = with_id(corpus("ham")[29], "move-me")
    assert send(mx, message, [BOB]).code == 250
    path = db_path(mx.data_dir)
    wait_model(path, BOB, Model(0, 0))
    client = ssl_client(mx, BOB)
    try:
        client.select("INBOX")
        status, found = client.uid("SEARCH", "HEADER", "Message-ID", "move-me")
        assert status == "OK"
        (uid,) = found[0].split()
        status, _ = client.uid("MOVE", uid.decode(), "Junk")
        assert status == "OK"
        wait_model(path, BOB, Model(1, 0))
        tokens = TokenStore(path)
        counts = tokens.lookup(BOB, tokenize(message))[1]
        tokens.close()
        assert counts["subject:onboarding"].spam == 1  # "Updated onboarding checklist"
        assert all(c.ham == 0 for c in counts.values())
        client.select("Junk")
        status, found = client.uid("SEARCH", "HEADER", "Message-ID", "move-me")
        (junk_uid,) = found[0].split()
        status, _ = client.uid("MOVE", junk_uid.decode(), "INBOX")
        assert status == "OK"
        wait_model(path, BOB, Model(0, 1))
        assert '"spam.trained"' in mx.log_text()
    finally:
        client.logout()
