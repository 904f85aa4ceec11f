"""Control protocol (pure): one JSON object a line each way over a local UNIX socket.

Request:  {"op": "queue.show", "args": {"queue_id": "..."}}
Response: {"ok": true, "result": ...}  or  {"ok": false, "error": "why"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 64 * 1024       # a request is small; replies (queue lists) may be long lines
OPS: dict[str, tuple[str, ...]] = {          # op -> the argument names it requires
    "ping": (),
    "queue.list": (),
    "queue.show": ("queue_id",),
    "queue.retry": ("queue_id",),
    "queue.delete": ("queue_id",),
    "queue.flush": (),
    "engine.status": (),      # who answers: pid, start, settings fingerprint (engine_ops.py)
    "engine.restart": (),     # restart gracefully and re-execute (engine_restart.py)
}


class ControlError(ValueError):
    """A malformed or refused control request; the text goes back to the client."""


@dataclass(frozen=True)
class Request:
    op: str
    args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    ok: bool
    result: Any = None
    error: str | None = None


def encode_request(request: Request) -> bytes:
    return _line({"op": request.op, "args": request.args})


def parse_request(line: bytes) -> Request:
    """Validate one request line.

    Raises:
        ControlError: not JSON, unknown op, or missing/extra/non-string arguments.
    """
    document = _object(line)
    op, args = document.get("op"), document.get("args", {})
    if not isinstance(op, str) or op not in OPS:
        raise ControlError(f"unknown op {op!r}: expected one of {', '.join(sorted(OPS))}")
    if not isinstance(args, dict) or set(args) != set(OPS[op]):
        raise ControlError(f"{op} takes arguments {list(OPS[op])}")
    if not all(isinstance(v, str) and v for v in args.values()):
        raise ControlError(f"{op}: arguments must be non-empty strings")
    return Request(op, dict(args))


def encode_response(response: Response) -> bytes:
    if response.ok:
        return _line({"ok": True, "result": response.result})
    return _line({"ok": False, "error": response.error or "failed"})


def parse_response(line: bytes) -> Response:
    document = _object(line)
    if document.get("ok") is True:
        return Response(True, document.get("result"))
    error = document.get("error")
    return Response(False, error=error if isinstance(error, str) else "malformed response")


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE and not line.startswith(b'{"ok"'):
        raise ControlError(f"request longer than {MAX_LINE} bytes")
    try:
        document = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(f"not a JSON line: {exc}") from exc
    if not isinstance(document, dict):
        raise ControlError("expected a JSON object")
    return document
