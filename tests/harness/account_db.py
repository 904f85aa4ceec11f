"""mailstead.db in a temp directory with one domain and one account in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

# A well-formed argon2id hash of no password anyone types: the stores under test keep
# per-account rows, they do not log in.
HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


def database_with_account(data_dir: Path, address: str) -> sqlite3.Connection:
    conn = open_database(data_dir)
    directory = SqliteDirectory(conn)
    directory.add_domain(address.rpartition("@")[2])
    directory.add_account(address, HASH)
    return conn
