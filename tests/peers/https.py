"""A tiny HTTPS server for MTA-STS policy files (RFC 8461 3.3) in tests.

`PolicyServer` serves `GET /.well-known/mta-sts.txt` on one loopback address and port with a
certificate the test chose, answering by the Host header from a table the test can change
while it runs. It records which hosts asked, so tests can see whether a cache was used.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

WELL_KNOWN = "/.well-known/mta-sts.txt"


@dataclass(frozen=True)
class Answer:
    """What the server sends for one host: status, Content-Type and body."""

    body: bytes
    status: int = 200
    content_type: str = "text/plain"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        self.server.requests.append(host)
        answer = self.server.answers.get(host)
        if self.path != WELL_KNOWN or answer is None:
            answer = Answer(b"not found\n", 404)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    answers: dict[str, Answer]
    requests: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass     # refused handshakes are what some tests want


class PolicyServer:
    """`with PolicyServer(addr, port, cert, key, {"mta-sts.x.test": Answer(b"...")}): ...`"""

    def __init__(self, address: str, port: int, cert: Path, key: Path,
                 answers: dict[str, Answer]) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = _Server((address, port), _Handler, bind_and_activate=True)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.answers = answers
        self._server.requests = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def answers(self) -> dict[str, Answer]:
        return self._server.answers

    @property
    def requests(self) -> list[str]:
        return self._server.requests

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():     # shutdown() waits for serve_forever: only if it runs
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> PolicyServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
