"""The outbound queue: list, show one message, retry now, delete, retry all — through the
engine's control socket (`appliance.control.client`), so the runner wakes at once.

The console never opens the spool itself: when the engine does not answer, the page says
so (503) instead of showing a stale or partial queue.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from appliance.control import client
from appliance.control.messages import ControlError
from appliance.control.server import SOCKET_NAME
from webui import audit, services
from webui.blueprints.admin_common import guard

bp = Blueprint("admin_queue", __name__, url_prefix="/admin/queue")
guard(bp)

MAX_QUEUE_ID = 64


class EngineDownError(Exception):
    """The engine did not answer on its control socket."""


def call(op: str, **args: str) -> Any:
    """One control request.

    Raises:
        EngineDownError: nothing answers (not running, stale socket, timeout).
        ControlError: the engine refused (e.g. no such message).
    """
    path = services.settings().data_dir / SOCKET_NAME
    try:
        return client.call(path, op, **args)
    except OSError as exc:         # ControlUnavailableError, timeouts, permission
        raise EngineDownError(str(exc)) from exc


def _engine_down(exc: EngineDownError) -> ResponseReturnValue:
    return render_template("admin/queue.html", messages=None, down=str(exc)), 503


def _checked(queue_id: str) -> str:
    if len(queue_id) > MAX_QUEUE_ID or not queue_id.isascii() or not queue_id.isalnum():
        abort(404)
    return queue_id


@bp.get("/")
def index() -> ResponseReturnValue:
    try:
        messages = call("queue.list")
    except EngineDownError as exc:
        return _engine_down(exc)
    return render_template("admin/queue.html", messages=messages, down="")


@bp.get("/<queue_id>")
def show(queue_id: str) -> ResponseReturnValue:
    try:
        message = call("queue.show", queue_id=_checked(queue_id))
    except EngineDownError as exc:
        return _engine_down(exc)
    except ControlError:
        abort(404)
    return render_template("admin/queue_message.html", message=message)


@bp.post("/<queue_id>/retry")
def retry(queue_id: str) -> ResponseReturnValue:
    return _act("retry", _checked(queue_id))


@bp.post("/<queue_id>/delete")
def delete(queue_id: str) -> ResponseReturnValue:
    return _act("delete", _checked(queue_id))


@bp.post("/flush")
def flush() -> ResponseReturnValue:
    try:
        result = call("queue.flush")
    except EngineDownError as exc:
        return _engine_down(exc)
    except ControlError as exc:
        flash(f"The engine refused: {exc}", "error")
        return redirect(url_for(".index"))
    audit.record("queue.flush", "*", recipients=str(result["recipients"]))
    flash(f"Every queued message is due now ({result['recipients']} recipient(s)).", "success")
    return redirect(url_for(".index"))


def _act(action: str, queue_id: str) -> ResponseReturnValue:
    try:
        result = call(f"queue.{action}", queue_id=queue_id)
    except EngineDownError as exc:
        return _engine_down(exc)
    except ControlError as exc:
        flash(f"{queue_id}: {exc}", "error")
        return redirect(url_for(".index"))
    audit.record(f"queue.{action}", queue_id)
    if action == "delete":
        flash(f"Deleted {queue_id} from the queue (no bounce is sent).", "success")
        return redirect(url_for(".index"))
    flash(f"{queue_id}: {result['recipients']} recipient(s) due now.", "success")
    return redirect(url_for(".show", queue_id=queue_id))
