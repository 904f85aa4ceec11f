"""A release repository (appliance/update/repository.py) published in a temporary folder and
served over HTTPS on loopback by http.server, with a certificate from a test CA: what the
updater's tests download from."""

from __future__ import annotations

import contextlib
import functools
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

from appliance.update.repository import ReleaseRepository
from peers.ca import TestCA


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def release_mirror(tmp_path: Path, ca_name: str) -> Iterator[tuple[ReleaseRepository, str, Path]]:
    """A new repository under `tmp_path`, served while the block runs: yields the
    repository, its https:// URL and the CA file that verifies the server."""
    repo = ReleaseRepository(tmp_path / "repo", root_keys=tmp_path / "offline")
    repo.create()
    authority = TestCA(ca_name)
    cert, key = authority.issue(["127.0.0.1"], tmp_path, "mirror")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = functools.partial(QuietHandler, directory=str((repo.workdir / "public").resolve()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield repo, f"https://127.0.0.1:{server.server_address[1]}/", \
            authority.write_cert(tmp_path / "ca.pem")
    finally:
        server.shutdown()
        server.server_close()
