"""Mail log search (pure apart from reading the tail of files): the engine's JSON-lines log
(`log.file`, `appliance.core.log.CappedFileHandler`) searched by address or queue id.

Reads are bounded: at most `budget` bytes from the end of the log and its rotated `.1`,
newest first, and at most `limit` matching lines; a line that is not a JSON object is
skipped. A cheap byte test picks candidate lines before any JSON is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_SCAN_BYTES = 32 * 1024 * 1024    # the newest 32 MiB: a busy day of a small office
MAX_RESULTS = 500
MAX_QUERY = 254                      # an address at most (RFC 5321 4.5.3.1.3)
MAX_QUEUE_ID = 64
_HEADER = ("ts", "level", "event")


class QueryError(ValueError):
    """The search text is neither (part of) an address nor a queue id."""


@dataclass(frozen=True)
class Query:
    """An address (or a part with `@`: `alice@`, `@example.org`), or an exact queue id."""

    text: str
    is_address: bool

    def needle(self) -> bytes:
        """The text as it appears inside a JSON string of the log (quotes escaped)."""
        return json.dumps(self.text, ensure_ascii=False)[1:-1].encode("utf-8")

    def candidate(self, line: bytes, needle: bytes) -> bool:
        """A cheap test that a raw line may match (before parsing it)."""
        if not self.is_address:
            return needle in line
        if line.isascii():       # the common case: no decoding
            return needle in line.lower()
        return needle in line.decode("utf-8", "replace").casefold().encode("utf-8")

    def matches(self, value: Any) -> bool:
        if isinstance(value, list):
            return any(self.matches(item) for item in value)
        if not isinstance(value, str):
            return False
        return self.text in value.casefold() if self.is_address else value == self.text


@dataclass(frozen=True)
class LogEntry:
    """One log line: its time, level and event, and the other fields as display text."""

    ts: str
    level: str
    event: str
    fields: tuple[tuple[str, str], ...]


def parse_query(text: str) -> Query:
    """Raises QueryError unless `text` is (part of) an address with `@`, or a queue id."""
    cleaned = text.strip()
    if not cleaned or len(cleaned) > MAX_QUERY:
        raise QueryError(f"search for an address or a queue id (at most {MAX_QUERY} characters)")
    if any(ord(c) < 32 or ord(c) == 127 for c in cleaned):
        raise QueryError("the search contains control characters")
    if "@" in cleaned:
        return Query(cleaned.casefold(), True)
    if len(cleaned) <= MAX_QUEUE_ID and cleaned.isascii() and cleaned.isalnum():
        return Query(cleaned, False)
    raise QueryError("search for an address (alice@example.org, or @example.org for a "
                     "whole domain) or a queue id (letters and digits)")


def log_files(path: Path) -> list[Path]:
    """The log and its rotated predecessor, newest first (those that exist)."""
    return [p for p in (path, path.with_name(path.name + ".1")) if p.is_file()]


def tail_lines(paths: Sequence[Path], budget: int = MAX_SCAN_BYTES) -> list[bytes]:
    """Whole lines from the last `budget` bytes of `paths` (newest file first), newest
    line first."""
    lines: list[bytes] = []
    for path in paths:
        if budget <= 0:
            break
        with path.open("rb") as f:
            size = f.seek(0, 2)
            start = max(0, size - budget)
            f.seek(start)
            chunk = f.read(size - start)
        budget -= len(chunk)
        found = chunk.split(b"\n")
        if start > 0:
            found = found[1:]        # began inside a line
        lines.extend(reversed([line for line in found if line.strip()]))
    return lines


def search(lines: Iterable[bytes], query: Query, limit: int = MAX_RESULTS) -> list[LogEntry]:
    """The first `limit` lines (in the order given) with a field that matches `query`."""
    needle = query.needle()
    found: list[LogEntry] = []
    for line in lines:
        if not query.candidate(line, needle):
            continue
        entry = _parse(line)
        if entry is not None and any(query.matches(v) for k, v in entry.items()
                                     if k not in _HEADER):
            found.append(_entry(entry))
            if len(found) >= limit:
                break
    return found


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _entry(document: dict[str, Any]) -> LogEntry:
    fields = tuple((str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                   for k, v in document.items() if k not in _HEADER)
    return LogEntry(str(document.get("ts", "")), str(document.get("level", "")),
                    str(document.get("event", "")), fields)
