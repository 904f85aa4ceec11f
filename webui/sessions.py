"""Server-side console sessions in mailstead.db: the cookie carries only a random id.

The table keeps the id's SHA-256, so a copy of the database opens no session. Logging in
calls `regenerate()`: the old id dies and a new one is sent (no session fixation).
Sessions end after `console.idle_timeout` seconds unused, and after MAX_AGE in any case.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from webui import security, services

COOKIE_NAME = "mailstead_session"
ID_BYTES = 32
MAX_ID_LENGTH = 64            # a longer cookie value is not one of ours: not looked up
MAX_AGE = 12 * 3600           # no session lives longer, however busy
TOUCH_INTERVAL = 30           # seconds between writes of last_seen for an unchanged session


class ConsoleSession(CallbackDict[str, Any], SessionMixin):
    """A session's data; `sid` is None until it is first saved."""

    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None,
                 last_seen: int = 0) -> None:
        def on_update(_self: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.last_seen = last_seen
        self.modified = False
        self.rotate = False

    def regenerate(self) -> None:
        """Give this session a fresh id when it is saved (at login and logout)."""
        self.rotate = True
        self.modified = True


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


class DatabaseSessionInterface(SessionInterface):
    """Flask's session interface over the console_sessions table."""

    def open_session(self, app: Flask, request: Request) -> ConsoleSession:
        sid = request.cookies.get(COOKIE_NAME, "")
        if not sid or len(sid) > MAX_ID_LENGTH:
            return ConsoleSession()
        row = services.db().execute(
            "SELECT data, created_at, last_seen FROM console_sessions WHERE id_hash = ?",
            (_hash(sid),)).fetchone()
        now = int(time.time())
        if row is None or _expired(int(row["created_at"]), int(row["last_seen"]), now):
            return ConsoleSession()
        return ConsoleSession(json.loads(row["data"]), sid, int(row["last_seen"]))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ConsoleSession)
        conn, now = services.db(), int(time.time())
        if session.sid is not None and (session.rotate or not session):
            conn.execute("DELETE FROM console_sessions WHERE id_hash = ?", (_hash(session.sid),))
            session.sid = None
        if not session:
            if COOKIE_NAME in request.cookies:
                response.delete_cookie(COOKIE_NAME, path="/", httponly=True,
                                       secure=_secure(), samesite="Strict")
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(ID_BYTES)
            conn.execute("DELETE FROM console_sessions WHERE last_seen < ? OR created_at < ?",
                         (now - _idle(), now - MAX_AGE))
            conn.execute("INSERT INTO console_sessions (id_hash, data, created_at, last_seen) "
                         "VALUES (?, ?, ?, ?)", (_hash(session.sid), _dump(session), now, now))
            self._set_cookie(response, session.sid)
        elif session.modified or now - session.last_seen >= TOUCH_INTERVAL:
            conn.execute("UPDATE console_sessions SET data = ?, last_seen = ? WHERE id_hash = ?",
                         (_dump(session), now, _hash(session.sid)))

    def _set_cookie(self, response: Response, sid: str) -> None:
        # A browser-session cookie (no Expires): the server decides when it is over.
        response.set_cookie(COOKIE_NAME, sid, path="/", httponly=True, secure=_secure(),
                            samesite="Strict")


def _dump(session: ConsoleSession) -> str:
    return json.dumps(dict(session), separators=(",", ":"))


def _idle() -> int:
    return int(services.option("console.idle_timeout"))


def _expired(created: int, last_seen: int, now: int) -> bool:
    return now - last_seen > _idle() or now - created > MAX_AGE


def _secure() -> bool:
    """Secure cookies, except for the dev console over plain HTTP on loopback."""
    return request.is_secure or not security.plain_http_allowed()


def end_sessions_of(kind: str, name: str, keep: SessionMixin | None = None) -> int:
    """Delete every session of one user (after a password change or removal), except `keep`
    (the session making the change); return how many ended."""
    kept = keep.sid if isinstance(keep, ConsoleSession) and keep.sid else ""
    return int(services.db().execute(
        "DELETE FROM console_sessions WHERE json_extract(data, '$.user.kind') = ? "
        "AND json_extract(data, '$.user.name') = ? AND id_hash != ?",
        (kind, name, _hash(kept) if kept else "")).rowcount)
