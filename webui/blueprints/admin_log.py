"""The mail log search page: the engine's `log.file` searched by address or queue id.

Search terms and log fields are shown escaped (Jinja autoescape); the page says which file
it read and how much of it, and what to set when the engine writes no log file.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from webui import audit, services
from webui.blueprints import admin_logsearch as logsearch
from webui.blueprints.admin_common import guard

bp = Blueprint("admin_log", __name__, url_prefix="/admin/log")
guard(bp)


@bp.get("/")
def index() -> ResponseReturnValue:
    current = services.settings()
    path = current.data_path("log.file") if current.get_str("log.file") else None
    text = request.args.get("q", "")[:logsearch.MAX_QUERY + 1]
    files = logsearch.log_files(path) if path is not None else []
    context = {"path": path, "files": files, "text": text, "error": "", "entries": None,
               "budget": logsearch.MAX_SCAN_BYTES, "limit": logsearch.MAX_RESULTS}
    if not text.strip():
        return render_template("admin/log.html", **context)
    try:
        query = logsearch.parse_query(text)
    except logsearch.QueryError as exc:
        return render_template("admin/log.html", **{**context, "error": str(exc)}), 400
    entries = logsearch.search(logsearch.tail_lines(files), query)
    audit.record("log.search", query.text, results=str(len(entries)))
    return render_template("admin/log.html", **{**context, "entries": entries})
