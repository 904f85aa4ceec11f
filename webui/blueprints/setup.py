"""The first-boot wizard, part one: the gate, the setup code, the first admin and TOTP.

Until an admin exists the console answers nothing but this wizard (and static files), and
the wizard only to a session that typed the one-time setup code (webui/setup_code.py),
checked through the login guard so wrong codes are counted and locked out.
"""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.auth.guard import Outcome
from appliance.auth.passwords import Passwords, WeakPasswordError
from appliance.storage.db import immediate_transaction
from webui import access, admins, audit, guards, security, services, setup_code, setup_state

bp = Blueprint("setup", __name__, url_prefix="/setup")

OPEN_ENDPOINTS = frozenset({"static", "healthz"})
MAX_FIELD = 1024


@bp.before_app_request
def first_boot_gate() -> Response | None:
    """Before the first admin exists, every page but the wizard leads to the wizard."""
    endpoint = request.endpoint or ""
    if endpoint in OPEN_ENDPOINTS or endpoint.startswith("setup.") \
            or security.is_public_view():
        return None
    if admins.any_admin(services.db()):
        return None
    return redirect(url_for("setup.start"))


WIZARD_BLUEPRINTS = frozenset({"setup", "setup_steps"})


@bp.app_context_processor
def wizard_frame() -> dict[str, bool]:
    """`setup_wizard`: the page is a step of the running wizard, so base.html shows the
    wizard's own header instead of the admin navigation. The TOTP page is also reached
    from the account page once setup is complete; it is a normal page then."""
    if request.blueprint not in WIZARD_BLUEPRINTS:
        return {"setup_wizard": False}
    if request.endpoint == "setup.totp":
        return {"setup_wizard": setup_state.next_step(services.db()) is not None}
    return {"setup_wizard": True}


@bp.get("")
def start() -> str | Response:
    if not admins.any_admin(services.db()):
        if session.get("setup_ok"):
            return redirect(url_for("setup.admin"))
        return render_template("setup/code.html")
    user = access.current_user()
    if user is None or not user.is_admin:
        return redirect(url_for("auth.login", next=url_for("setup.start")))
    step = setup_state.next_step(services.db())
    if step is None:
        return redirect(url_for("setup_steps.done"))
    return redirect(url_for(STEP_ENDPOINTS[step]))


STEP_ENDPOINTS = {"admin": "setup.admin", "totp": "setup.totp", "host": "setup_steps.host",
                  "timezone": "setup_steps.timezone", "tls": "setup_steps.tls",
                  "dkim": "setup_steps.dkim"}


@bp.post("/code")
def code() -> Response | tuple[str, int]:
    if admins.any_admin(services.db()):
        return redirect(url_for("setup.start"))
    typed = request.form.get("code", "")[:MAX_FIELD]
    result = guards.check_setup_code(typed, request.remote_addr or "")
    if result.ok:
        session.regenerate()  # type: ignore[attr-defined]
        session["setup_ok"] = True
        return redirect(url_for("setup.admin"))
    if result.outcome is Outcome.LOCKED:
        minutes = max(1, round(result.retry_after / 60))
        flash(f"Too many wrong codes. Try again in about {minutes} minute(s).", "error")
        return render_template("setup/code.html"), 429
    flash("That is not the setup code shown on the appliance's screen.", "error")
    return render_template("setup/code.html"), 401


@bp.route("/admin", methods=["GET", "POST"])
def admin() -> str | Response | tuple[str, int]:
    conn = services.db()
    if admins.any_admin(conn):
        return redirect(url_for("setup.start"))
    if not session.get("setup_ok"):
        abort(redirect(url_for("setup.start")))
    if request.method == "GET":
        return render_template("setup/admin.html", username="admin")
    typed = request.form.get("username", "")[:MAX_FIELD]
    try:
        name = _create_first_admin(typed, request.form.get("password", ""),
                                   request.form.get("password2", ""))
    except (admins.AdminError, WeakPasswordError) as exc:
        flash(str(exc), "error")
        return render_template("setup/admin.html", username=typed[:64]), 400
    setup_code.remove(services.settings().data_dir)
    access.log_in(access.User("admin", name))
    audit.record("admin.create", name, via="setup wizard")
    flash(f"Admin {name} created: you are logged in.", "success")
    return redirect(url_for("setup.totp"))


def _create_first_admin(typed: str, password: str, again: str) -> str:
    """Validate and store the first admin (refused if another got there first)."""
    name = admins.normalise_username(typed)
    if password != again:
        raise WeakPasswordError("the two passwords differ")
    admins.check_strong_password(password, name)
    password_hash = Passwords.from_settings(services.settings()).hash(password)
    conn = services.db()
    with immediate_transaction(conn):
        if admins.any_admin(conn):
            raise admins.AdminError("an admin was created meanwhile: log in instead")
        admins.create(conn, name, password_hash)
        setup_state.mark_done(conn, "admin")
    return name


@bp.route("/totp", methods=["GET", "POST"])
@access.admin_required
def totp() -> str | Response | tuple[str, int]:
    user = access.current_user()
    assert user is not None
    conn = services.db()
    secret = session.get("totp_pending")
    if not isinstance(secret, str):
        secret = admins.new_totp_secret()
        session["totp_pending"] = secret
    if request.method == "POST":
        if request.form.get("action") == "skip":
            session.pop("totp_pending", None)
            setup_state.mark_done(conn, "totp")
            audit.record("admin.totp_skip", user.name)
            return redirect(_after_totp())
        typed = request.form.get("code", "")[:20]
        if admins.totp_step(secret, typed) is not None:
            admins.set_totp(conn, user.name, secret)
            admins.accept_totp(conn, user.name, typed)      # that code is used up
            session.pop("totp_pending", None)
            setup_state.mark_done(conn, "totp")
            audit.record("admin.totp_enable", user.name)
            flash("Two-factor login is on: you will be asked for a code at login.", "success")
            return redirect(_after_totp())
        flash("That code does not match. Check the time on your phone and try again.", "error")
    uri = admins.provisioning_uri(secret, user.name)
    status = 400 if request.method == "POST" else 200
    return render_template("setup/totp.html", secret=secret, qr=qr_data_uri(uri),
                           in_wizard=setup_state.next_step(conn) is not None), status


def _after_totp() -> str:
    """Back into the wizard while it runs; to the account page once it is complete."""
    if setup_state.next_step(services.db()) is None:
        return url_for("account.index")
    return url_for("setup.start")


def qr_data_uri(text: str) -> str:
    """`text` as a QR code in an SVG data: URI (no script, no external request)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8,
                        border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
