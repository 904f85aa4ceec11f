"""The client side of the control socket (CLI, console): one request, one answer."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from appliance.control.messages import ControlError, Request, encode_request, parse_response

TIMEOUT = 30.0


class ControlUnavailableError(OSError):
    """No engine answers on the socket (not running, or the socket is stale)."""


def call(path: Path, op: str, **args: str) -> Any:
    """Send one request and return its result.

    Raises:
        ControlUnavailableError: nothing listens on `path`.
        ControlError: the engine refused the request (the text says why).
    """
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise ControlUnavailableError(f"no engine on {path}") from exc
    with sock, sock.makefile("rb") as replies:
        sock.sendall(encode_request(Request(op, args)))
        line = replies.readline()
    if not line:
        raise ControlError("the engine closed the connection without an answer")
    response = parse_response(line)
    if not response.ok:
        raise ControlError(response.error or "failed")
    return response.result
