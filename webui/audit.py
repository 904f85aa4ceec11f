"""The audit log: one row for every admin action (who, from where, what, on what).

`record()` is called by every view that changes something; details are short strings
and never a secret (no passwords, codes or keys).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from flask import request

from webui import access, services

MAX_FIELD = 500        # characters kept of any one field (targets are user-typed)


@dataclass(frozen=True)
class Entry:
    """One audit log row."""

    at: int
    actor: str
    client: str
    action: str
    target: str
    details: dict[str, str]


def record(action: str, target: str, **details: str) -> None:
    """Log one admin action by the current user (or "setup" before any admin exists)."""
    user = access.current_user()
    actor = user.name if user is not None else "setup"
    services.db().execute(
        "INSERT INTO audit_log (at, actor, client, action, target, details) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (int(time.time()), actor[:MAX_FIELD], request.remote_addr or "", action[:MAX_FIELD],
         target[:MAX_FIELD],
         json.dumps({k: str(v)[:MAX_FIELD] for k, v in details.items()}, ensure_ascii=False)))


def recent(limit: int = 100, offset: int = 0) -> list[Entry]:
    """The newest entries first."""
    rows = services.db().execute(
        "SELECT at, actor, client, action, target, details FROM audit_log "
        "ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
    return [Entry(int(r["at"]), r["actor"], r["client"], r["action"], r["target"],
                  json.loads(r["details"])) for r in rows]
