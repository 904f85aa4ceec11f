"""`/`: the admin dashboard (domains, accounts, queue, setup progress) or a mail user's
home page linking to self-service."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, redirect, render_template, url_for
from werkzeug.wrappers import Response

from appliance.control import client
from appliance.control.messages import ControlError
from appliance.control.server import SOCKET_NAME
from webui import access, services, setup_state
from webui.dashboard_notices import dashboard_notices

bp = Blueprint("home", __name__)

SELF_SERVICE_ENDPOINTS = ("self.index", "self_service.index")


@dataclass(frozen=True)
class QueueStatus:
    """The outbound queue as the engine reports it; `size` None: the engine did not answer."""

    size: int | None
    problem: str = ""


def queue_status() -> QueueStatus:
    """Ask the running engine over its control socket how many messages are queued."""
    path = services.settings().data_dir / SOCKET_NAME
    try:
        messages = client.call(path, "queue.list")
    except (OSError, ControlError, ValueError) as exc:
        return QueueStatus(None, type(exc).__name__)
    return QueueStatus(len(messages) if isinstance(messages, list) else None)


@bp.get("/")
def index() -> str | Response:
    user = access.current_user()
    if user is None:
        return redirect(url_for("auth.login"))
    if not user.is_admin:
        link = next((url_for(e) for e in SELF_SERVICE_ENDPOINTS
                     if e in current_app.view_functions), None)
        return render_template("home/user.html", address=user.name, self_service=link)
    per_domain = services.directory().domain_counts()      # one GROUP BY query
    return render_template("home/dashboard.html", domains=per_domain,
                           account_count=sum(per_domain.values()), queue=queue_status(),
                           setup_step=setup_state.next_step(services.db()),
                           notices=dashboard_notices(services.settings(), services.directory()))
