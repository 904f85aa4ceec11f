"""The settings page and the health page of the administration (/admin/...); the updates
page is admin_updates.py.

Settings are rendered from the schema (`appliance.settings.SCHEMA`); the editable ones
(`Setting.editable`) are a form per section, saved in mailstead.db through
`appliance.settings_store` (all of a section's changes or none) and audited; boot-level ones
are shown read-only (mailstead.toml). The console uses a change at once, the engine after a
restart: the page asks the engine (control op `engine.status`) which saved settings it does
not run with yet and offers "Apply now", a graceful restart (`engine.restart`, see
appliance/engine_restart.py). Health shows
the engine, the data disk and what the hardware monitor stored (`admin_health.py`), or
what will appear once it runs.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance import settings_store
from appliance.control import client
from appliance.control.engine_ops import pending
from appliance.control.messages import ControlError
from appliance.control.server import SOCKET_NAME
from appliance.core.sizes import parse_space
from appliance.net import firewall_lan, ssh_access
from appliance.settings import SCHEMA, SECTIONS, SETTINGS_BY_NAME, Setting, Settings
from webui import audit, security, services
from webui.blueprints import admin_common
from webui.blueprints.admin_common import guard
from webui.blueprints.admin_health import CHART_DAYS, monitor_view

bp = Blueprint("admin_system", __name__, url_prefix="/admin")
guard(bp)
bp.add_app_template_filter(admin_common.when, "admin_when")
bp.add_app_template_filter(admin_common.size, "admin_size")

# What the pages will show once their issues land (said on the page, not hidden).
HEALTH_TO_COME = (
    "Disks: model, serial, SMART status and attributes (smartctl)",
    "RAID arrays: state, members, rebuild progress (md RAID)",
    "Temperatures of disks and CPU, with history charts",
    "Space of every file system over time, with alerts before it runs out",
)


MAX_TEXT = 1000     # characters of one typed value: more is refused (none needs as many)
MASKED = "********"
# read per request by the console alone, or (ssh) applied by a root unit at once: never
# the engine's, so never "pending" until it restarts
LIVE_SECTIONS = ("console", "dns", "ssh")
# text settings drawn as a textarea, with their own length limit instead of MAX_TEXT
LONG_TEXT = {"ssh.authorized_keys": ssh_access.MAX_TEXT}
# a heading beside the section's name
SECTION_TITLES = {"ssh": "SSH access (key-only, from the LAN)"}
RESTART_WAIT = 10.0     # seconds "Apply now" waits for the engine to be back (then: "restarting")
RESTART_WAIT_KEY = "MAILSTEAD_RESTART_WAIT"    # app.config may set another (slow test machines)


@dataclass(frozen=True)
class SettingRow:
    """One setting as the settings page shows it (never a secret's value)."""

    setting: Setting
    value: Any              # masked if secret
    changed: bool
    origin: str             # default, file, database or environment
    fallback: str           # what "reset" returns to (masked if secret)
    default: str            # the schema's default as text (masked if secret)
    typed: str | None = None    # the text sent with an error, shown again
    error: str = ""

    @property
    def kind(self) -> str:
        """`bool`, `int` or `str`: which form field the template draws."""
        return self.setting.kind.__name__


@dataclass(frozen=True)
class EngineStatus:
    """Whether the engine answers on its control socket, and the queue length it reports."""

    running: bool
    queued: int | None
    error: str


@dataclass(frozen=True)
class EngineSettings:
    """What the running engine says about its settings, as the settings page shows it."""

    running: bool
    pending: list[str] = field(default_factory=list)    # saved, not in use by the engine
    restarting: bool = False
    started: float | None = None
    error: str = ""


@bp.get("/settings")
def settings_page() -> ResponseReturnValue:
    return _settings_page({}, {})


def _settings_page(typed: dict[str, str], errors: dict[str, str],
                   status: int = 200) -> ResponseReturnValue:
    found = services.effective()
    current = found.settings
    base = current_app.config[services.SETTINGS_KEY]
    assert isinstance(base, Settings)
    sections = {section: [_row(s, current, base, typed, errors)
                          for s in SCHEMA if s.section == section] for section in SECTIONS}
    return render_template("admin/settings.html", sections=sections, ignored=found.ignored,
                           source=current.source, data_dir=current.data_dir,
                           live_sections=LIVE_SECTIONS, max_text=MAX_TEXT,
                           long_text=LONG_TEXT, section_titles=SECTION_TITLES,
                           engine=engine_settings(current)), status


def engine_settings(current: Settings) -> EngineSettings:
    """Ask the engine which settings it runs with (`engine.status`, one short request) and
    name the saved ones it does not (the console's own sections left out)."""
    try:
        found = _engine_call(current, "engine.status")
    except (OSError, ControlError) as exc:
        return EngineSettings(False, error=str(exc))
    return EngineSettings(True, pending(found.get("settings") or {}, current, LIVE_SECTIONS),
                          bool(found.get("restarting")), _number(found.get("started")))


def _engine_call(current: Settings, op: str) -> dict[str, Any]:
    found = client.call(current.data_dir / SOCKET_NAME, op)
    if not isinstance(found, dict):
        raise ControlError(f"unexpected answer to {op}")
    return found


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@bp.post("/settings/apply")
def apply_settings() -> ResponseReturnValue:
    """Restart the mail engine gracefully so that it runs with the saved settings."""
    current = services.settings()
    before = engine_settings(current)
    try:
        answer = _engine_call(current, "engine.restart")
    except (OSError, ControlError) as exc:
        flash(f"The mail engine did not answer, nothing was restarted: {exc}", "error")
        return redirect(url_for("admin_system.settings_page"))
    audit.record("engine.restart", "mail engine", reason="apply settings",
                 pending=", ".join(before.pending) or "none")
    if _wait_restarted(current, str(answer.get("instance", ""))):
        flash("The mail engine restarted and runs with the saved settings.", "info")
    else:
        grace = current.get_int("limits.shutdown_grace")
        flash(f"The mail engine is restarting: sessions in a mail transaction get up to "
              f"{grace} s to finish. Reload this page to see when it is back.", "info")
    return redirect(url_for("admin_system.settings_page"))


def _wait_restarted(current: Settings, instance: str) -> bool:
    """Whether an engine other than `instance` answers within RESTART_WAIT seconds."""
    deadline = time.monotonic() + float(current_app.config.get(RESTART_WAIT_KEY, RESTART_WAIT))
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            if _engine_call(current, "engine.status").get("instance") != instance:
                return True
        except (OSError, ControlError):
            continue        # stopping, or not listening yet
    return False


def _row(setting: Setting, current: Settings, base: Settings, typed: dict[str, str],
         errors: dict[str, str]) -> SettingRow:
    name = setting.name
    return SettingRow(setting, _shown(setting, current[name]), current[name] != setting.default,
                      current.origin(name), _shown(setting, base[name]),
                      _shown(setting, setting.default),
                      None if setting.secret else typed.get(name), errors.get(name, ""))


def _shown(setting: Setting, value: Any) -> str:
    """A value as text for the page and the audit log (a secret's is masked)."""
    return MASKED if setting.secret and value else settings_store.to_text(setting, value)


@bp.post("/settings")
def save_settings() -> ResponseReturnValue:
    """Save one section's form: every changed value, in one transaction, or nothing."""
    section = request.form.get("section", "")
    if not any(s.editable for s in SCHEMA if s.section == section):
        abort(400, "no settings section of that name can be edited here")
    current = services.settings()
    texts, errors = _submitted(section, current)
    values, refused = settings_store.check_many(texts)
    errors.update(refused)
    errors.update(_key_errors(texts))
    errors.update(_lockout(values))
    if errors:
        flash("Nothing was saved: correct the values marked below.", "error")
        return _settings_page(texts, errors, 400)
    changed = {name: value for name, value in values.items() if value != current[name]}
    if changed:
        settings_store.store_many(services.db(), {name: texts[name] for name in changed})
        services.settings_changed()
    _request_apply(current, list(changed))
    for name, value in changed.items():
        setting = settings_store.editable_setting(name)
        audit.record("settings.change", name, old=_audited(setting, current[name]),
                     new=_audited(setting, value))
    flash(_saved_message(section, list(changed)), "info")
    return redirect(url_for("admin_system.settings_page") + f"#section-{section}")


def _request_apply(current: Settings, names: list[str]) -> None:
    """Touch the trigger files of the root units that apply these settings."""
    if "console.allowed_networks" in names:
        firewall_lan.request_apply(current.data_dir)    # the root unit reloads nft's sets
    if any(name.startswith("ssh.") for name in names):
        ssh_access.request_apply(current.data_dir)      # mailstead-ssh starts or stops sshd


def _audited(setting: Setting, value: Any) -> str:
    """A value as the audit log keeps it: SSH keys by their fingerprints only."""
    if setting.name != "ssh.authorized_keys":
        return _shown(setting, value)
    try:
        keys = ssh_access.parse_keys(str(value))
    except ssh_access.SshKeyError:
        return "(not valid keys)"
    return ", ".join(key.fingerprint for key in keys) or "none"


def _key_errors(texts: dict[str, str]) -> dict[str, str]:
    """The SSH key check's own message (it names the line), instead of the generic one
    that would repeat the whole text."""
    text = texts.get("ssh.authorized_keys")
    if text is None:
        return {}
    try:
        ssh_access.parse_keys(text)
    except ssh_access.SshKeyError as exc:
        return {"ssh.authorized_keys": str(exc)}
    return {}


def _submitted(section: str, current: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """The section's editable values as sent (text by name), and over-long ones refused.
    A checkbox left out means false; a blank secret keeps the stored one; a value set by
    the environment is not in the form (it would win anyway)."""
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for setting in SCHEMA:
        name = setting.name
        if (setting.section != section or not setting.editable
                or current.origin(name) == "environment"):
            continue
        if setting.kind is bool:
            texts[name] = "true" if request.form.get(name) else "false"
            continue
        text = request.form.get(name)
        if text is None or (setting.secret and not text):
            continue
        limit = LONG_TEXT.get(name, MAX_TEXT)
        texts[name] = text.strip()[:limit]
        if len(text.strip()) > limit:
            errors[name] = f"longer than {limit} characters"
    return texts, errors


def _lockout(values: dict[str, Any]) -> dict[str, str]:
    """Refuse console networks that leave out the admin making the change (locked out,
    only a shell could undo it)."""
    networks = values.get("console.allowed_networks")
    remote = request.remote_addr or ""
    if networks is None or security.client_allowed(remote, str(networks)):
        return {}
    return {"console.allowed_networks": f"your own address {remote} is not in these "
                                        "networks: saving would lock you out"}


def _saved_message(section: str, names: list[str]) -> str:
    if not names:
        return "Nothing changed."
    if section == "ssh":
        return (f"Saved {', '.join(names)}. SSH is switched within seconds "
                "(mailstead-ssh applies the settings as root).")
    when = ("They take effect at once." if section in LIVE_SECTIONS else
            "The mail engine uses them after a restart: Apply now, at the top of this page.")
    return f"Saved {', '.join(names)}. {when}"


@bp.post("/settings/reset")
def reset_setting() -> ResponseReturnValue:
    """Delete one stored value: the setting returns to mailstead.toml's or the default."""
    name = request.form.get("reset", "")
    stored = settings_store.read_rows(services.db())
    if name not in stored:
        abort(404, "no stored value of that setting")
    before = services.settings()
    settings_store.remove(services.db(), name)
    services.settings_changed()
    _request_apply(before, [name])
    setting = SETTINGS_BY_NAME.get(name)
    if setting is None:         # a row the schema no longer knows (it was ignored)
        audit.record("settings.reset", name)
        flash(f"Removed the stored value of {name}, which no setting uses now.", "info")
    else:
        audit.record("settings.reset", name, old=_audited(setting, before[name]))
        back = _shown(setting, services.settings()[name])
        flash(f"Removed the stored value of {name}: it is {back} again.", "info")
    section = name.split(".", 1)[0]
    return redirect(url_for("admin_system.settings_page") + f"#section-{section}")


@bp.get("/health")
def health() -> ResponseReturnValue:
    current = services.settings()
    usage = shutil.disk_usage(current.data_dir)
    floor = parse_space(current.get_str("limits.min_free_space"))
    return render_template("admin/health.html", engine=engine_status(), usage=usage,
                           floor=floor.of(usage.total), data_dir=current.data_dir,
                           monitor=monitor_view(services.db()), chart_days=CHART_DAYS,
                           to_come=HEALTH_TO_COME)


def engine_status() -> EngineStatus:
    """Ask the engine for its queue over the control socket (one short request)."""
    path = services.settings().data_dir / SOCKET_NAME
    try:
        queued = client.call(path, "queue.list")
    except (OSError, ControlError) as exc:
        return EngineStatus(False, None, str(exc))
    return EngineStatus(True, len(queued) if isinstance(queued, list) else None, "")
