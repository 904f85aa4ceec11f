"""The setup and administration console (Flask under gunicorn: `webui:create_app()`).

`create_app()` wires the shared parts (services, server-side sessions, CSRF, security
headers, templates' helpers) and registers every blueprint listed in
`webui/blueprints/__init__.py`. Nothing is created at import time.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from appliance.storage.db import open_database
from webui import access, admins, csrf, security, services, setup_code
from webui.blueprints import BLUEPRINTS, NAV
from webui.sessions import DatabaseSessionInterface

MAX_REQUEST_BYTES = 1024 * 1024     # forms are small; a bigger body is refused with 413


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the console application.

    Args:
        config: Flask config overrides; `MAILSTEAD_SETTINGS` (a Settings object) replaces
            loading mailstead.toml the way the CLI does.
    """
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, SESSION_COOKIE_NAME="unused",
                      TEMPLATES_AUTO_RELOAD=False)
    if config:
        app.config.update(config)
    services.init_app(app)
    app.session_interface = DatabaseSessionInterface()
    security.init_app(app)
    csrf.init_app(app)
    _prepare_data_dir(app)
    app.context_processor(_template_globals)
    app.jinja_env.filters["utc"] = _utc
    app.register_error_handler(HTTPException, _error_page)

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    register_blueprints(app)
    return app


def register_blueprints(app: Flask) -> None:
    """Register every blueprint in `BLUEPRINTS` (the console's, and the public app's in
    webui/public.py, which then answers only the `@public` views)."""
    for module_name, attribute in BLUEPRINTS:
        blueprint = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(blueprint, Blueprint)
        app.register_blueprint(blueprint)


def _prepare_data_dir(app: Flask) -> None:
    """Migrate the database; until an admin exists, make sure there is a setup code."""
    with app.app_context():
        data_dir = services.settings().data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = open_database(data_dir)
    try:
        if not admins.any_admin(conn):
            setup_code.ensure(data_dir)
    finally:
        conn.close()


def _template_globals() -> dict[str, Any]:
    user = access.current_user()
    return {"current_user": user, "nav_links": _nav(user),
            "dev_http": not request.is_secure and security.plain_http_allowed()}


def _utc(timestamp: int) -> str:
    """A Unix time as `YYYY-MM-DD HH:MM:SS` in UTC (the `utc` template filter)."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _nav(user: access.User | None) -> list[tuple[str, str]]:
    if user is None:
        return []
    return [(label, url_for(endpoint)) for label, endpoint, audience in NAV
            if audience == user.kind and endpoint in current_app.view_functions]


def _error_page(error: HTTPException) -> Any:
    if error.response is not None:          # abort(redirect(...)) from the decorators
        return error.response
    if error.code is None or error.code < 400:
        return error.get_response()
    return render_template("error.html", error=error), error.code
