"""The updates page (/admin/updates): the running version and slot, the update settings, the
updater's state.json (last check, pending install, history, failed versions), and buttons
that ask the root updater to check, install, reboot or roll back.

The console runs as `mailstead` and can write neither the slots nor the ESP: each button
writes one request file (appliance/update/requests.py) that mailstead-update-request.path
hands to the root updater within seconds. Off the appliance image (no `mailstead.slot=` on
the kernel command line, no /efi) the page says so and offers no button.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from appliance.cli.update_cmds import running_version
from appliance.settings import Settings
from appliance.update import requests, slots, state
from webui import access, audit, services
from webui.blueprints.admin_common import guard

bp = Blueprint("admin_updates", __name__, url_prefix="/admin/updates")
guard(bp)

# app.config keys that point the page at other files (tests); the appliance's by default.
CMDLINE_KEY, ESP_KEY = "MAILSTEAD_CMDLINE", "MAILSTEAD_ESP"
CMDLINE, ESP = Path("/proc/cmdline"), Path("/efi")
REQUESTED = "requested; the updater runs it within a few seconds"
LABELS = {"check": "Check now", "install": "Install now", "reboot": "Reboot now",
          "rollback": "Roll back"}
RESTARTS = ("reboot", "rollback")     # these restart the appliance: a ticked box confirms
TELL = {"check": "A check for updates was", "install": "An install of the newest release was",
        "reboot": "A reboot into the installed update was",
        "rollback": "A rollback to the previous slot was"}


@dataclass(frozen=True)
class UpdatesView:
    """What the page shows; `can` holds the buttons offered now."""

    appliance: bool
    version: str
    booted: str | None
    channel: str
    url: str
    window: str
    found: state.UpdateState = field(default_factory=state.UpdateState)
    error: str = ""                        # state.json unreadable
    rollback_refusal: str = ""             # why Roll back is not offered ("" = it is)
    queued: list[requests.Request] = field(default_factory=list)
    can: tuple[str, ...] = ()
    source: str = ""                       # the settings file (where update.* are set)

    @property
    def pending_since(self) -> float | None:
        """When the pending install was made (its "installed" line in the history)."""
        pending = self.found.pending
        for outcome in reversed(self.found.history):
            if pending and outcome.version == pending.version and outcome.outcome == "installed":
                return outcome.at
        return None


@bp.get("")
def index() -> ResponseReturnValue:
    return render_template("admin/updates.html", view=updates_view(services.settings()),
                           labels=LABELS, requested=REQUESTED, restarts=RESTARTS)


def updates_view(current: Settings) -> UpdatesView:
    """Everything the page shows, read from the settings, /proc/cmdline and state.json."""
    booted = slots.booted_slot(_read(current_app.config.get(CMDLINE_KEY, CMDLINE)))
    appliance = booted is not None and Path(current_app.config.get(ESP_KEY, ESP)).is_dir()
    found, error = state.UpdateState(), ""
    try:
        found = state.load(state.state_dir(current))
    except (OSError, ValueError) as exc:
        error = str(exc)
    refusal = _rollback_refusal(booted, found)
    view = UpdatesView(appliance, running_version(), booted, current.get_str("update.channel"),
                       current.get_str("update.url"),
                       current.get_str("update.maintenance_window"), found, error, refusal,
                       requests.queued(requests.request_dir(current.data_dir)),
                       source=str(current.source or "mailstead.toml"))
    return UpdatesView(**{**view.__dict__, "can": _buttons(view)})


def _read(path: object) -> str:
    try:
        return Path(str(path)).read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return ""


def _rollback_refusal(booted: str | None, found: state.UpdateState) -> str:
    if booted is None:
        return "the booted slot is unknown"
    if found.esp is None:
        return "the updater has not yet recorded the boot loader's entries"
    return requests.rollback_refusal(booted, found.pending,
                                     found.esp.entries.get(booted, []),
                                     found.esp.entries.get(slots.other(booted), []))


def _buttons(view: UpdatesView) -> tuple[str, ...]:
    """Check and Install need update.url and no pending install; Reboot needs an install
    waiting on this (the old) slot; Roll back a bootable previous slot."""
    if not view.appliance or view.error:
        return ()
    pending = view.found.pending
    can = []
    if view.url:
        can.append("check")
        if pending is None:
            can.append("install")
    if pending is not None and pending.from_slot == view.booted:
        can.append("reboot")
    if not view.rollback_refusal:
        can.append("rollback")
    return tuple(can)


@bp.post("/check", defaults={"action": "check"})
@bp.post("/install", defaults={"action": "install"})
@bp.post("/reboot", defaults={"action": "reboot"})
@bp.post("/rollback", defaults={"action": "rollback"})
def ask(action: str) -> ResponseReturnValue:
    """Write one request for the root updater (only the buttons the page offers now)."""
    current = services.settings()
    if action not in updates_view(current).can:
        flash(f"{LABELS[action]} is not possible now: nothing was requested.", "error")
        return redirect(url_for("admin_updates.index"), 303)
    if action in RESTARTS and request.form.get("confirm") != "yes":
        flash(f"{LABELS[action]} restarts the appliance: tick the box to confirm. "
              "Nothing was requested.", "error")
        return redirect(url_for("admin_updates.index"), 303)
    user = access.current_user()
    assert user is not None                 # the guard let only an admin in
    requests.submit(requests.request_dir(current.data_dir), action, user.name)
    audit.record(f"update.{action}", "updater", requested="yes")
    flash(f"{TELL[action]} {REQUESTED}.", "info")
    return redirect(url_for("admin_updates.index"), 303)
