"""Safe lookups in parsed JSON of unknown shape: a wrong type reads as absent, never raises."""

from __future__ import annotations

from typing import Any


def dig(obj: Any, *path: str | int) -> Any:
    """`obj[path[0]][path[1]]...`, or None when a step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, str) and isinstance(obj, dict):
            obj = obj.get(step)
        elif isinstance(step, int) and isinstance(obj, list) and -len(obj) <= step < len(obj):
            obj = obj[step]
        else:
            return None
    return obj


def as_int(obj: Any, *path: str | int) -> int | None:
    value = dig(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(obj: Any, *path: str | int) -> str:
    value = dig(obj, *path)
    return value.strip() if isinstance(value, str) else ""


def as_bool(obj: Any, *path: str | int) -> bool | None:
    value = dig(obj, *path)
    return value if isinstance(value, bool) else None


def as_list(obj: Any, *path: str | int) -> list[Any]:
    value = dig(obj, *path)
    return value if isinstance(value, list) else []
