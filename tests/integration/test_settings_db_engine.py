"""The engine runs with the settings stored in mailstead.db (the console's and `mailstead
config set`'s) over mailstead.toml: a stored `server.hostname` is in the SMTP greeting after
a start, a change applies at the next start, and a bad stored row is logged and ignored
instead of stopping the engine."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from appliance import settings_store
from appliance.storage.db import open_database
from harness.engine import HOSTNAME, EngineProcess

STORED = "mx.stored.example"
CHANGED = "mx.changed.example"


def greeting(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
        sock.sendall(b"QUIT\r\n")
    return data.decode("ascii").strip()


def store(data_dir: Path, name: str, text: str) -> None:
    conn = open_database(data_dir)
    try:
        settings_store.store(conn, name, text)
    finally:
        conn.close()


def test_stored_hostname_is_in_the_greeting_after_a_start(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data")
    store(engine.data_dir, "server.hostname", STORED)
    conn = open_database(engine.data_dir)   # a row an older version wrote: now boot-level
    conn.execute("INSERT INTO settings (key, value) VALUES ('listen.smtp_port', '1')")
    conn.close()
    with engine:
        assert greeting(engine.smtp_port).startswith(f"220 {STORED} ")
        store(engine.data_dir, "server.hostname", CHANGED)      # while it runs
        assert greeting(engine.smtp_port).startswith(f"220 {STORED} ")
    events = [json.loads(line) for line in engine.log_text().splitlines()
              if line.startswith("{")]
    ignored = [e for e in events if e["event"] == "settings.stored_value_ignored"]
    assert [(e["setting"], e["level"]) for e in ignored] == [("listen.smtp_port", "warning")]
    assert any(e["event"] == "engine.ready" and e["hostname"] == STORED for e in events)

    with engine:                                                # the next start
        assert greeting(engine.smtp_port).startswith(f"220 {CHANGED} ")
    conn = open_database(engine.data_dir)
    settings_store.remove(conn, "server.hostname")
    conn.close()
    with engine:
        assert greeting(engine.smtp_port).startswith(f"220 {HOSTNAME} ")   # the file's
