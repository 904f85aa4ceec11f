"""The index's per-message cache in bulk: values the protocols derived (ENVELOPE,
BODYSTRUCTURE) read for many messages in one query, and each message's raw header block,
kept for SEARCH so that a header search over 10,000 messages reads no message file.

The cache is not durable (it can always be rebuilt from the files): its writes skip the WAL
fsync, and a batch is written in one transaction. Rows go with their message (expunge,
folder delete); UIDs are never reused within a UIDVALIDITY, so a row cannot go stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping

from appliance.storage.maildir import flags as names
from appliance.storage.maildir.index import write
from appliance.storage.maildir.sync import FolderState

# The key of the header blocks; the protocols' keys are lower-case words ("envelope").
HEADERS_KEY = "mailstead:header"
# Most header blocks fit in the first read; a longer one costs a second read of the file.
HEADER_PREFIX = 16384
# Above this many UIDs, `get_many` scans the folder's rows instead of looking each one up.
SCAN_ABOVE = 500


def get_many(conn: sqlite3.Connection, folder_id: int, uids: Iterable[int],
             key: str) -> dict[int, str | bytes]:
    """The cached `key` of each of `uids` that has one, in one query. A few UIDs go in as
    one JSON array (no limit on bound parameters) and are looked up by the primary key;
    for many, one scan of the folder's rows is twice as fast (and the rest is dropped)."""
    wanted = set(uids)
    if len(wanted) <= SCAN_ABOVE:
        rows = conn.execute("SELECT uid, value FROM cache WHERE folder_id = ? AND key = ? "
                            "AND uid IN (SELECT value FROM json_each(?))",
                            (folder_id, key, json.dumps(sorted(wanted))))
        return dict(rows.fetchall())
    rows = conn.execute("SELECT uid, value FROM cache WHERE folder_id = ? AND key = ?",
                        (folder_id, key))
    return {uid: value for uid, value in rows if uid in wanted}


def put_many(conn: sqlite3.Connection, folder_id: int, key: str,
             values: Mapping[int, str | bytes]) -> None:
    """Cache `values` (uid: value) in one transaction; a message expunged meanwhile gets
    no row."""
    if not values:
        return
    with unsynced(conn), write(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO cache (folder_id, uid, key, value) SELECT ?, ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM messages WHERE folder_id = ? AND uid = ?)",
            [(folder_id, uid, key, value, folder_id, uid) for uid, value in values.items()])


@contextlib.contextmanager
def unsynced(conn: sqlite3.Connection) -> Iterator[None]:
    """Commit without the WAL fsync: the cache is not durable by contract."""
    conn.execute("PRAGMA synchronous=OFF")
    try:
        yield
    finally:
        conn.execute("PRAGMA synchronous=FULL")


def to_text(value: str) -> str | bytes:
    """A value as stored: text, or (when it carries undecodable bytes as surrogates, as
    the protocols' renderings may) its bytes, which SQLite keeps as a BLOB."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")
    return value


def from_stored(value: object) -> str:
    """The inverse of `to_text`."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def paths_of(state: FolderState, uids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """uid: where the message file may be (`FolderState.file_strs`), for those of `uids`
    the folder holds."""
    folder = os.fspath(state.path)
    files, moved = state.files, state.moved
    return {uid: state.file_strs(uid) if uid in moved
            else (f"{folder}/{files[uid][0]}/{files[uid][1]}",) for uid in uids if uid in files}


def read_header_of(paths: tuple[str, ...]) -> bytes:
    """`read_header` of the first of `paths` that exists (FileNotFoundError: none)."""
    for path in paths[:-1]:
        try:
            return read_header(path)
        except FileNotFoundError:
            continue
    return read_header(paths[-1])


def header_block(data: bytes) -> bytes | None:
    """BODY[HEADER] of a message that starts with `data` (RFC 9051 6.4.5): everything up to
    and including the first empty line, with CRLF line ends. None if `data` holds no empty
    line (the caller then passes the whole message, whose header is all of it)."""
    crlf = names.to_crlf(data)
    if crlf.startswith(b"\r\n"):
        return b"\r\n"
    end = crlf.find(b"\r\n\r\n")
    return None if end < 0 else crlf[:end + 4]


def read_header(path: str) -> bytes:
    """The header block of the message file at `path` (FileNotFoundError when it is gone)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.read(fd, HEADER_PREFIX)     # a regular file reads short only at its end
        found = header_block(head)
        if found is not None or len(head) < HEADER_PREFIX:
            return found if found is not None else names.to_crlf(head)
        rest = [head]
        while chunk := os.read(fd, 1 << 20):
            rest.append(chunk)
    finally:
        os.close(fd)
    whole = b"".join(rest)
    found = header_block(whole)
    return found if found is not None else names.to_crlf(whole)
