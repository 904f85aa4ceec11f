"""Structured logging: one JSON object a line on stderr, with an event name and fields.

Callers pass facts as keyword fields (`queue_id`, `client`, ...). Message bodies and secrets
are never passed here; `configure` also silences libraries that would log protocol lines.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from typing import Any

_LOGGER = logging.getLogger("mailstead")
_RESERVED = frozenset(vars(logging.makeLogRecord({})))
# One encoder for every line: json.dumps with options builds a new one each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonLineFormatter(logging.Formatter):
    """Render a record as one JSON line: ts, level, event, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": f"{_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return _ENCODER.encode(entry)


@functools.lru_cache(maxsize=4)     # busy engines log many lines within one second
def _second(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def configure(level: str = "info") -> None:
    """Send mailstead logs to stderr as JSON lines; keep aiosmtpd from logging commands."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    _LOGGER.setLevel(level.upper())
    # aiosmtpd logs every command line at INFO, AUTH payloads included: never let it.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (no bodies, no secrets)."""
    _LOGGER.log(level, name, extra=_safe_fields(fields))


def error(name: str, exc: BaseException | None = None, **fields: Any) -> None:
    """Log a failure; with `exc` the exception's type and text are recorded too."""
    _LOGGER.error(name, extra=_safe_fields(fields), exc_info=exc)


def _safe_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Rename fields that would clash with LogRecord attributes (logging refuses those)."""
    return {(f"{k}_" if k in _RESERVED or k == "message" else k): v for k, v in fields.items()}
