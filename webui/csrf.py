"""CSRF tokens (OWASP synchronizer token pattern): one random token per session.

Every POST, PUT, PATCH and DELETE must carry it (form field `csrf_token` or header
`X-CSRF-Token`), else 400. Templates write `{{ csrf_field() }}` in every form. Views that
strangers' programs call by design (Autodiscover's POST) are marked with `@exempt`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, abort, current_app, request, session
from markupsafe import Markup

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
F = TypeVar("F", bound=Callable[..., object])


def init_app(app: Flask) -> None:
    app.before_request(_check)
    app.jinja_env.globals["csrf_field"] = csrf_field
    app.jinja_env.globals["csrf_token"] = token


def exempt(view: F) -> F:
    """Mark a view that takes POSTs from programs without a session (no CSRF check)."""
    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view


def token() -> str:
    """This session's token (made on first use)."""
    value = session.get("csrf")
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        session["csrf"] = value
    return value


def csrf_field() -> Markup:
    """The hidden form field carrying the token."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, token())


def _check() -> None:
    if request.method not in UNSAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "csrf_exempt", False):
        return
    sent = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not sent \
            or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "missing or wrong CSRF token: reload the page and try again")
