"""The data directory's layout (DESIGN.md "Data"): create it, its TLS material and database.

Run at every start; each step is idempotent, so a second start reuses what is there.

The directory is set-group-ID and mailstead.db group read-write (`DATA_DIR_MODE`,
`storage.db.DB_MODE`): on the appliance the updater's and the firewall's units run as root
without CAP_CHOWN and read mailstead.db. When such a reader is the first to open the
database, SQLite creates its -shm (and -wal) file as root with the database's mode and
cannot give it to the database's owner (its fchown needs CAP_CHOWN); with the group
inherited from this directory and the mode 0660 copied from the database, the mail user
can still open them. Without this, a root health check that opened the database before the
engine made the engine fail with "unable to open database file" until the file went.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.core import log
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.tls.certs import make_self_signed

SUBDIRECTORIES = ("mail", "queue", "archive", "tls", "dkim")
DATA_DIR_MODE = 0o2700     # setgid: files made here by root get the data owner's group


def prepare(settings: Settings) -> Path:
    """Create the data directory tree, a self-signed certificate if none, and migrate the db."""
    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = data_dir.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o7777 != DATA_DIR_MODE:
        try:        # the appliance's first boot makes it so; a sandbox may forbid setgid
            os.chmod(data_dir, DATA_DIR_MODE)
        except PermissionError:
            log.event("datadir.setgid_refused", logging.WARNING, path=str(data_dir))
    for name in SUBDIRECTORIES:
        (data_dir / name).mkdir(mode=0o700, exist_ok=True)
    cert, key = settings.data_path("tls.cert_file"), settings.data_path("tls.key_file")
    if not cert.exists() or not key.exists():
        make_self_signed(settings.get_str("server.hostname"), cert, key)
        log.event("tls.self_signed_created", cert=str(cert))
    os.chmod(key, 0o600)
    open_database(data_dir).close()
    return data_dir
