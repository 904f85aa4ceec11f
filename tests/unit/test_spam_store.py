"""The token store (spam/store.py) shared by processes: two processes learning into one
SQLite database at once lose no update, and a reader in a third sees consistent totals."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from appliance.spam.classifier import Counts, Model
from appliance.spam.store import GLOBAL, TokenStore, db_path
from appliance.spam.tokenizer import tokenize

LEARNER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from appliance.spam.store import TokenStore
    from appliance.spam.training import Learner
    path, name, count, is_spam = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    learner = Learner(TokenStore(path))
    print("ready", flush=True)
    sys.stdin.readline()                        # start together
    for i in range(count):
        message = (f"Subject: {name} {i}\\r\\nMessage-ID: <{name}-{i}@example.test>\\r\\n\\r\\n"
                   f"shared words here and token{i % 7} from {name}\\r\\n").encode()
        learner.learn("", message, is_spam == "spam")
        learner.learn("alice@example.test", message, is_spam == "spam")
""")


def test_two_processes_learning_at_once_lose_nothing(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    TokenStore(path).close()
    count = 150
    procs = [subprocess.Popen([sys.executable, "-c", LEARNER, str(path), name, str(count),
                               kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for name, kind in (("one", "spam"), ("two", "ham"))]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    reader = TokenStore(path)
    seen: list[Model] = []
    while any(proc.poll() is None for proc in procs):
        model = reader.model(GLOBAL)          # never a half-applied lesson
        seen.append(model)
    for proc in procs:
        assert proc.wait(120) == 0
    assert seen
    assert reader.model(GLOBAL) == Model(count, count)
    assert reader.model("alice@example.test") == Model(count, count)
    counts = reader.lookup(GLOBAL, ["shared", "words", "token3", "subject:one"])[1]
    assert counts["shared"] == Counts(count, count)
    assert counts["token3"] == Counts(21, 21)             # i % 7 == 3 for 21 of 150
    assert counts["subject:one"] == Counts(count, 0)
    stats = {row.account: row for row in reader.stats()}
    assert set(stats) == {GLOBAL, "alice@example.test"}
    assert stats[GLOBAL].tokens == stats["alice@example.test"].tokens > 10
    reader.close()


def test_store_is_wal_and_private(tmp_path: Path) -> None:
    store = TokenStore(db_path(tmp_path))
    with store.writing() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "spam").stat().st_mode & 0o077 == 0
    assert store.lookup(GLOBAL, tokenize(b"Subject: x\r\n\r\nnothing yet")) == (Model(0, 0), {})
    store.close()
