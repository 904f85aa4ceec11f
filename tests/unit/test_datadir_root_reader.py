"""A root process that opens mailstead.db first must not lock the mail user out of it.

On the appliance the updater's units run as root without CAP_CHOWN (their exposure score),
and the health check after an update opens mailstead.db read-only. When it was the first
to open the database, SQLite made the -shm file as root, mode 0600, and could not give it
to the owner: the engine, starting beside it, failed with "unable to open database file",
the health check failed, and the update was rolled back (seen in `image-test --update`).
appliance/datadir.py: the data directory is set-group-ID and the database 0660, so the
file root makes gets the data owner's group and a group read-write mode.

Runs as root (as CI does): the data owner is `nobody` (a child process with its uid), the
reader a root process without CAP_CHOWN (setpriv), as the updater's unit is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance import datadir
from appliance.settings import load_settings
from appliance.storage import db as db_module
from appliance.storage.db import DB_MODE, DB_NAME, open_database
from harness.netns import tool

NOBODY = 65534
READER = """import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
print("open", conn.execute("PRAGMA user_version").fetchone()[0], flush=True)
sys.stdin.read()
conn.close()
"""


def as_nobody(action: Callable[[], None]) -> int:
    """Run `action` in a child with nobody's uid and gid; its exit code (0: it worked)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except BaseException as exc:
            os.write(2, f"as nobody: {exc!r}\n".encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp_path has 0700 parents)."""
    path = Path(tempfile.mkdtemp(prefix="mailstead-root-reader-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_the_mail_user_opens_the_database_while_root_holds_it(
        base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (CI runs as root): it plays the updater's unit")
    data = base / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    toml = base / "mailstead.toml"
    toml.write_text(f'[paths]\ndata_dir = "{data}"\n[server]\nhostname = "mail.example.test"\n')
    settings = load_settings(toml, environ={})

    # The child as nobody may not read the checkout (CI's is under /root, 0700): prepare
    # runs once as root first, in a scratch directory, for the modules it imports lazily,
    # and the migrations' SQL (package files) is read here and handed down by the fork.
    scratch = base / "warm"
    (base / "warm.toml").write_text(f'[paths]\ndata_dir = "{scratch}"\n')
    datadir.prepare(load_settings(base / "warm.toml", environ={}))
    shipped = db_module.migrations()
    monkeypatch.setattr(db_module, "migrations", lambda: shipped)

    def prepare() -> None:
        datadir.prepare(settings)

    assert as_nobody(prepare) == 0
    db = data / DB_NAME
    assert stat.S_IMODE(data.stat().st_mode) == datadir.DATA_DIR_MODE
    assert stat.S_IMODE(db.stat().st_mode) == DB_MODE
    assert not (data / f"{DB_NAME}-shm").exists()      # nobody's connection closed

    # the health check's way (appliance/update/health.py): read-only, as root without
    # CAP_CHOWN (setpriv drops it from the bounding set, as the unit's
    # CapabilityBoundingSet does), and kept open while the mail user writes
    reader = subprocess.Popen(
        [tool("setpriv"), "--bounding-set=-chown", sys.executable, "-c", READER, str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().split()[0] == "open"
        shm = (data / f"{DB_NAME}-shm").stat()
        assert shm.st_uid == 0, "root made the -shm file and could not chown it"
        assert shm.st_gid == NOBODY, "the set-group-ID directory gave it the owner's group"
        assert stat.S_IMODE(shm.st_mode) == DB_MODE

        def write() -> None:
            conn = open_database(data)
            conn.execute("CREATE TABLE IF NOT EXISTS probe (x)")
            conn.execute("INSERT INTO probe VALUES (1)")
            conn.close()

        assert as_nobody(write) == 0, "the mail user could not open the database"
    finally:
        stdin = reader.stdin
        assert stdin is not None
        stdin.close()
        reader.wait(30)
    with contextlib.closing(sqlite3.connect(db)) as check:
        assert check.execute("SELECT count(*) FROM probe").fetchone()[0] == 1
