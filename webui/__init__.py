"""The setup and administration console (Flask under gunicorn: `webui:create_app()`).

Only the application factory and a health endpoint exist so far; the first-boot wizard and
the administration pages are issue 6.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the console application (nothing is created at import time)."""
    app = Flask(__name__)
    if config:
        app.config.update(config)

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    return app
