"""Who is logged in, and the decorators that keep pages to admins or logged-in users.

A session holds one user: an admin (`console_admins`, by username) or a mail user (an
account, by address). `current_user()` re-checks the row on every request, so a deleted
admin or a disabled account is logged out at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

from flask import abort, g, redirect, request, session, url_for

from webui import admins, services

P = ParamSpec("P")
R = TypeVar("R")
Kind = Literal["admin", "user"]


@dataclass(frozen=True)
class User:
    """The logged-in person: `name` is an admin's username or a mail user's address."""

    kind: Kind
    name: str

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def current_user() -> User | None:
    """The user of this request's session, or None (not logged in, or no longer valid)."""
    if "mailstead_user" in g:
        found: User | None = g.mailstead_user
        return found
    found = _load_user()
    g.mailstead_user = found
    return found


def _load_user() -> User | None:
    stored = session.get("user")
    if not isinstance(stored, dict):
        return None
    kind, name = stored.get("kind"), stored.get("name")
    if kind == "admin" and isinstance(name, str) and admins.exists(services.db(), name):
        return User("admin", name)
    if kind == "user" and isinstance(name, str) \
            and services.directory().password_hash(name) is not None:
        return User("user", name)
    return None


def log_in(user: User) -> None:
    """Start a fresh session for `user`: new id (no fixation), new CSRF token."""
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]
    session["user"] = {"kind": user.kind, "name": user.name}
    g.mailstead_user = user


def log_out() -> None:
    """End the session: its row is deleted and the cookie cleared."""
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]
    g.mailstead_user = None


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """Send visitors who are not logged in to the login page (and back afterwards)."""
    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        if current_user() is None:
            abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
        return view(*args, **kwargs)
    return wrapped


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    """Admins only: a logged-in mail user gets 403, a visitor the login page."""
    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        user = current_user()
        if user is None:
            abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
        if not user.is_admin:
            abort(403)
        return view(*args, **kwargs)
    return wrapped
