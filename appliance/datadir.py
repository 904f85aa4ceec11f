"""The data directory's layout (DESIGN.md "Data"): create it, its TLS material and database.

Run at every start; each step is idempotent, so a second start reuses what is there.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance.core import log
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.tls.certs import make_self_signed

SUBDIRECTORIES = ("mail", "queue", "archive", "tls", "dkim")


def prepare(settings: Settings) -> Path:
    """Create the data directory tree, a self-signed certificate if none, and migrate the db."""
    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in SUBDIRECTORIES:
        (data_dir / name).mkdir(mode=0o700, exist_ok=True)
    cert, key = settings.data_path("tls.cert_file"), settings.data_path("tls.key_file")
    if not cert.exists() or not key.exists():
        make_self_signed(settings.get_str("server.hostname"), cert, key)
        log.event("tls.self_signed_created", cert=str(cert))
    os.chmod(key, 0o600)
    open_database(data_dir).close()
    return data_dir
