"""Structured logging: one JSON object a line on stderr, with an event name and fields.

Callers pass facts as keyword fields (`queue_id`, `client`, ...). Message bodies and secrets
are never passed here; `configure` also silences libraries that would log protocol lines.
The same lines may also go to a size-capped file (`log.file`) for the console's log search.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
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


class CappedFileHandler(logging.handlers.WatchedFileHandler):
    """Append JSON lines to a file; past `max_bytes` rename it to `<file>.1` and start afresh.

    Forked engine workers share one file (O_APPEND keeps whole lines). The process that
    rotates holds an flock on the old file and renames it only if the path still names that
    file, so two workers crossing the limit together rotate once; the others notice the new
    inode at their next line (WatchedFileHandler) and reopen.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(path, encoding="utf-8")
        self.max_bytes = max_bytes

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        try:
            if self.stream is not None:
                fd = self.stream.fileno()
                if os.fstat(fd).st_size > self.max_bytes:
                    self._rotate(fd)
        except OSError:
            self.handleError(record)

    def _rotate(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            path_stat, own = os.stat(self.baseFilename), os.fstat(fd)
            if (path_stat.st_dev, path_stat.st_ino) == (own.st_dev, own.st_ino):
                os.replace(self.baseFilename, self.baseFilename + ".1")
        except FileNotFoundError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.reopenIfNeeded()


def configure(level: str = "info", file: Path | None = None,
              file_max_bytes: int = 64 * 1024 * 1024) -> None:
    """Send mailstead logs to stderr as JSON lines, and to `file` too when given (see
    `CappedFileHandler`); keep aiosmtpd from logging commands."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, CappedFileHandler):
            old.close()
    root.handlers[:] = [handler]
    if file is not None:
        capped = CappedFileHandler(file, file_max_bytes)
        capped.setFormatter(JsonLineFormatter())
        root.handlers.append(capped)
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
