"""Bulk calls of the Maildir account for large folders: STORE on 1,000 messages (one UPDATE
batch; then, in the background, one rename each and a directory fsync per batch of renames),
COPY and MOVE of 1,000, `get_cached_many` and `headers_many` (the header cache that SEARCH
reads)."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path

import pytest

from appliance.core import fsio
from appliance.storage.mailbox_api import INBOX, FlagOperation, NoSuchFolderError
from appliance.storage.maildir import cache, dirty
from appliance.storage.maildir.account import MaildirAccount
from appliance.storage.maildir.index import INDEX_NAME

FLAGGED = frozenset({"\\Flagged"})


def message(i: int, extra: bytes = b"") -> bytes:
    return (b"From: a%d@example.org\nSubject: message %d\n" % (i, i) + extra
            + b"\nbody %d\nsecond line\n" % i)


def fill(root: Path, count: int) -> None:
    """A folder written as a delivery would (LF line ends, sizes in the names)."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        data = message(i)
        name = f"{1_700_000_000 + i}.M{i}P1.host,S={len(data)},W={len(data) + 5}:2,S"
        (root / "cur" / name).write_bytes(data)


@pytest.fixture
def big(tmp_path: Path) -> MaildirAccount:
    fill(tmp_path / "alice", 2000)
    account = MaildirAccount("alice@example.test", tmp_path / "alice")
    account.sync(INBOX)
    return account


def index_rows(root: Path) -> dict[int, tuple[str, str, int]]:
    with sqlite3.connect(root / INDEX_NAME) as conn:
        rows = conn.execute("SELECT uid, filename, flags, modseq FROM messages")
        return {uid: (name, flags, modseq) for uid, name, flags, modseq in rows}


def count_directory_syncs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """From now on, every directory fsync (still done for real) is listed in the result."""
    synced: list[Path] = []
    real_sync = fsio.DIRECTORY_SYNC.sync

    def counted_sync(directory: Path) -> None:
        synced.append(directory)
        real_sync(directory)

    monkeypatch.setattr(fsio.DIRECTORY_SYNC, "sync", counted_sync)
    return synced


def test_store_on_a_thousand_messages(big: MaildirAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    root = big._root
    synced = count_directory_syncs(monkeypatch)
    uids = list(range(1, 1001))
    timings = []
    for operation in (FlagOperation.ADD, FlagOperation.REMOVE) * 3:
        started = time.perf_counter()
        result = big.store_flags(INBOX, uids, operation, FLAGGED)
        timings.append(time.perf_counter() - started)
        assert [m.uid for m in result.changed] == uids
        assert len({m.modseq for m in result.changed}) == 1     # one MODSEQ (RFC 7162 3.1.1)
        assert big.wait_renames(10)                 # the renames follow in the background
    # in the background, one fsync of cur/ per batch of renames (and never of anything else)
    assert set(synced) == {root / "cur"}
    assert len(synced) == 6 * math.ceil(1000 / dirty.BATCH)
    big.store_flags(INBOX, uids, FlagOperation.ADD, FLAGGED)
    assert big.wait_renames(10)
    names = os.listdir(root / "cur")
    assert sum(n.endswith(":2,FS") for n in names) == 1000
    assert sum(n.endswith(":2,S") for n in names) == 1000
    rows = index_rows(root)
    assert all(rows[uid][1] == "\\Flagged \\Seen" and rows[uid][0].endswith(":2,FS")
               for uid in uids)
    assert all(rows[uid][1] == "\\Seen" for uid in range(1001, 2001))
    fresh = MaildirAccount(big.address, root)       # what the disk says agrees with the index
    assert sum("\\Flagged" in m.flags for m in fresh.sync(INBOX).messages) == 1000
    print(f"\nSTORE 1:1000 +/-FLAGS: best {min(timings) * 1000:.1f} ms, "
          f"worst {max(timings) * 1000:.1f} ms")
    fresh.close()
    big.close()


def test_renames_of_a_store_larger_than_a_batch(big: MaildirAccount,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A STORE on more messages than one batch renames (here 2,000 in batches of 300, the
    last one short): each batch clears exactly its own rows' marks, so every later batch
    still finds its files to rename, and every file ends under its row's name."""
    monkeypatch.setattr(dirty, "BATCH", 300)
    root = big._root
    synced = count_directory_syncs(monkeypatch)
    uids = list(range(1, 2001))
    for operation, letters in ((FlagOperation.ADD, ":2,FS"), (FlagOperation.REMOVE, ":2,S")):
        synced.clear()
        big.store_flags(INBOX, uids, operation, FLAGGED)
        assert big.wait_renames(10)
        assert len(synced) == math.ceil(2000 / 300)
        names = os.listdir(root / "cur")
        assert len(names) == 2000
        assert all(name.endswith(letters) for name in names)
        with sqlite3.connect(root / INDEX_NAME) as conn:
            assert conn.execute("SELECT COUNT(*) FROM messages WHERE dirty IS NOT NULL"
                                ).fetchone() == (0,)
            rows = set(conn.execute("SELECT filename FROM messages"))
        assert rows == {(name,) for name in names}
    big.close()


def test_copy_and_move_a_thousand_messages(big: MaildirAccount,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One fsync of each changed directory per call, one intent written and gone again."""
    root = big._root
    big.create_folder("Other")
    big.create_folder("Copies")
    synced = count_directory_syncs(monkeypatch)
    uids = list(range(1, 1001))
    started = time.perf_counter()
    copied = big.copy(INBOX, uids, "Copies")
    copy_time = time.perf_counter() - started
    assert synced == [root / ".Copies" / "cur"]
    synced.clear()
    started = time.perf_counter()
    moved = big.move(INBOX, uids, "Other")
    move_time = time.perf_counter() - started
    assert sorted(synced) == [root / ".Other" / "cur", root / "cur"]
    assert copied.target_uids == moved.target_uids == tuple(uids)
    assert moved.source_uids == tuple(uids)
    assert len(os.listdir(root / ".Other" / "cur")) == 1000
    assert len(os.listdir(root / "cur")) == 1000
    with sqlite3.connect(root / INDEX_NAME) as conn:
        assert conn.execute("SELECT COUNT(*) FROM intents").fetchone() == (0,)
    fresh = MaildirAccount(big.address, root)       # what the disk says agrees with the index
    assert [m.uid for m in fresh.sync("Other").messages] == uids
    assert all(m.flags == {"\\Seen"} for m in fresh.sync("Copies").messages)
    print(f"\nCOPY 1:1000 {copy_time * 1000:.1f} ms, MOVE 1:1000 {move_time * 1000:.1f} ms")
    fresh.close()
    big.close()


def test_store_skips_a_file_another_tool_removed(big: MaildirAccount) -> None:
    root = big._root
    victim = next(n for n in os.listdir(root / "cur") if n.startswith("1700000004."))
    os.unlink(root / "cur" / victim)
    result = big.store_flags(INBOX, range(1, 11), FlagOperation.ADD, FLAGGED)
    assert [m.uid for m in result.changed] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    snapshot = big.sync(INBOX)
    assert 5 not in {m.uid for m in snapshot.messages}
    assert sum("\\Flagged" in m.flags for m in snapshot.messages) == 9
    big.close()


def test_get_cached_many_few_and_many(big: MaildirAccount) -> None:
    for uid in range(1, 1501):
        big.put_cached(INBOX, uid, "envelope", f"envelope {uid}")
    big.put_cached(INBOX, 7, "bodystructure", "structure 7")
    few = big.get_cached_many(INBOX, [7, 8, 1600, 99999], "envelope")
    assert few == {7: "envelope 7", 8: "envelope 8"}
    assert len(few) <= cache.SCAN_ABOVE
    every = big.get_cached_many(INBOX, range(1, 2001), "envelope")      # the scan path
    assert every == {uid: f"envelope {uid}" for uid in range(1, 1501)}
    some = big.get_cached_many(INBOX, range(1000, 1700), "envelope")
    assert some == {uid: f"envelope {uid}" for uid in range(1000, 1501)}
    assert big.get_cached_many(INBOX, [7], "bodystructure") == {7: "structure 7"}
    assert big.get_cached(INBOX, 7, "envelope") == "envelope 7"
    assert big.get_cached_many(INBOX, [], "envelope") == {}
    with pytest.raises(NoSuchFolderError):
        big.get_cached_many("Nowhere", [1], "envelope")
    big.close()


def test_cached_values_keep_undecodable_bytes(big: MaildirAccount) -> None:
    """FETCH renders 8-bit header bytes as surrogates (surrogateescape): they round-trip."""
    value = b'("Subject \xff\xfe" NIL)'.decode("utf-8", "surrogateescape")
    big.put_cached(INBOX, 3, "envelope", value)
    assert big.get_cached(INBOX, 3, "envelope") == value
    assert big.get_cached_many(INBOX, [3], "envelope") == {3: value}
    big.close()


def test_expunge_drops_cached_values(big: MaildirAccount) -> None:
    big.put_cached(INBOX, 1, "envelope", "e1")
    big.headers_many(INBOX, [1, 2])
    big.store_flags(INBOX, [1, 2], FlagOperation.ADD, frozenset({"\\Deleted"}))
    assert big.expunge(INBOX) == [1, 2]
    assert big.get_cached_many(INBOX, [1, 2], "envelope") == {}
    assert big.get_cached_many(INBOX, [1, 2], cache.HEADERS_KEY) == {}
    big.close()


def test_headers_many_reads_once_then_from_the_cache(big: MaildirAccount) -> None:
    root = big._root
    uids = [m.uid for m in big.sync(INBOX).messages]
    started = time.perf_counter()
    first = big.headers_many(INBOX, uids)
    cold = time.perf_counter() - started
    assert len(first) == 2000
    assert first[1] == b"From: a0@example.org\r\nSubject: message 0\r\n\r\n"
    assert all(first[uid] == big.read(INBOX, uid).partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
               for uid in (5, 500, 2000))
    # Messages never change: a file rewritten behind our back shows the cache is used.
    victim = next(n for n in os.listdir(root / "cur") if n.startswith("1700000000."))
    (root / "cur" / victim).write_bytes(b"Subject: rewritten\n\nx\n")
    started = time.perf_counter()
    again = big.headers_many(INBOX, uids)
    warm = time.perf_counter() - started
    assert again == first
    assert big.headers_many(INBOX, [1, 2, 99999]) == {1: first[1], 2: first[2]}
    other = MaildirAccount(big.address, root)       # the cache is in the index: shared
    assert other.headers_many(INBOX, [1]) == {1: first[1]}
    print(f"\nheaders_many 2000: first {cold * 1000:.1f} ms, cached {warm * 1000:.1f} ms")
    other.close()
    big.close()


def test_headers_many_writes_one_transaction(big: MaildirAccount) -> None:
    commits: list[str] = []
    big._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    big.headers_many(INBOX, range(1, 2001))
    assert commits == ["COMMIT"]
    big.close()


def test_header_block_shapes(tmp_path: Path) -> None:
    root = tmp_path / "bob"
    account = MaildirAccount("bob@example.test", root)
    long_field = b"X-Long: " + b"y" * (cache.HEADER_PREFIX + 100) + b"\n"
    contents = {
        "lf": b"Subject: lf\n\nbody\n",
        "crlf": b"Subject: crlf\r\n\r\nbody\r\n",
        "no-blank-line": b"Subject: only a header\nX-A: b",
        "empty-header": b"\nbody without header\n",
        "long": b"Subject: long\n" + long_field + b"\nbody\n",
        "long-no-blank": b"Subject: long\n" + long_field,
    }
    uids = {key: account.append(INBOX, data).target_uids[0] for key, data in contents.items()}
    blocks = account.headers_many(INBOX, uids.values())
    expected = {
        "lf": b"Subject: lf\r\n\r\n",
        "crlf": b"Subject: crlf\r\n\r\n",
        "no-blank-line": b"Subject: only a header\r\nX-A: b",
        "empty-header": b"\r\n",
        "long": b"Subject: long\r\n" + long_field.replace(b"\n", b"\r\n") + b"\r\n",
        "long-no-blank": b"Subject: long\r\n" + long_field.replace(b"\n", b"\r\n"),
    }
    assert {key: blocks[uid] for key, uid in uids.items()} == expected
    assert account.headers_many(INBOX, uids.values()) == blocks
    account.close()


def test_headers_many_follows_renames_and_skips_expunged(big: MaildirAccount) -> None:
    root = big._root
    renamed = next(n for n in os.listdir(root / "cur") if n.startswith("1700000009."))
    os.rename(root / "cur" / renamed, root / "cur" / renamed.replace(":2,S", ":2,RS"))
    removed = next(n for n in os.listdir(root / "cur") if n.startswith("1700000010."))
    os.unlink(root / "cur" / removed)
    found = big.headers_many(INBOX, [10, 11, 12])
    assert sorted(found) == [10, 12]
    assert found[10] == b"From: a9@example.org\r\nSubject: message 9\r\n\r\n"
    assert big.get_cached_many(INBOX, [11], cache.HEADERS_KEY) == {}
    big.close()
