"""`/account`: an admin's own password and two-factor login, the list of console admins
(add one, remove one; never yourself, so one admin always remains), and the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.auth.passwords import MAX_PASSWORD_LENGTH, Passwords, WeakPasswordError
from webui import access, admins, audit, guards, services
from webui.sessions import end_sessions_of

bp = Blueprint("account", __name__, url_prefix="/account")

AUDIT_PAGE = 100


def _me() -> access.User:
    user = access.current_user()
    assert user is not None
    return user


def _render(status: int = 200) -> tuple[str, int]:
    conn = services.db()
    me = admins.get(conn, _me().name)
    names = [r[0] for r in conn.execute("SELECT username FROM console_admins ORDER BY username")]
    return render_template("account/index.html", me=me, admins=names), status


@bp.get("")
@access.admin_required
def index() -> tuple[str, int]:
    return _render()


def _password_ok(password: str) -> bool:
    """The admin's current password, checked through the login guard (counted, logged)."""
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        return False
    result = guards.check_password(admins.guard_name(_me().name), password,
                                   request.remote_addr or "")
    return result.ok


@bp.post("/password")
@access.admin_required
def change_password() -> Response | tuple[str, int]:
    me = _me().name
    new, again = request.form.get("new", ""), request.form.get("new2", "")
    if not _password_ok(request.form.get("current", "")):
        flash("Your current password is not right.", "error")
        return _render(400)
    try:
        if new != again:
            raise WeakPasswordError("the two new passwords differ")
        admins.check_strong_password(new, me)
    except WeakPasswordError as exc:
        flash(str(exc), "error")
        return _render(400)
    conn = services.db()
    admins.set_password_hash(conn, me, Passwords.from_settings(services.settings()).hash(new))
    ended = end_sessions_of("admin", me, keep=session)
    audit.record("admin.password_change", me, other_sessions_ended=str(ended))
    flash("Password changed. Your other sessions were logged out.", "info")
    return redirect(url_for("account.index"))


@bp.post("/totp/disable")
@access.admin_required
def disable_totp() -> Response | tuple[str, int]:
    me = _me().name
    if not _password_ok(request.form.get("current", "")):
        flash("Your current password is not right.", "error")
        return _render(400)
    admins.set_totp(services.db(), me, None)
    audit.record("admin.totp_disable", me)
    flash("Two-factor login is off.", "info")
    return redirect(url_for("account.index"))


@bp.post("/admins")
@access.admin_required
def add_admin() -> Response | tuple[str, int]:
    typed = request.form.get("username", "")[:64]
    password = request.form.get("password", "")
    try:
        name = admins.normalise_username(typed)
        admins.check_strong_password(password, name)
        admins.create(services.db(), name,
                      Passwords.from_settings(services.settings()).hash(password))
    except (admins.AdminError, WeakPasswordError) as exc:
        flash(str(exc), "error")
        return _render(400)
    audit.record("admin.create", name)
    flash(f"Admin {name} added. They can turn on two-factor login after logging in.", "info")
    return redirect(url_for("account.index"))


@bp.post("/admins/<name>/delete")
@access.admin_required
def delete_admin(name: str) -> Response:
    if name == _me().name:
        abort(400, "you cannot remove yourself: another admin can")
    conn = services.db()
    if not admins.exists(conn, name):
        abort(404)
    conn.execute("DELETE FROM console_admins WHERE username = ?", (name,))
    end_sessions_of("admin", name)
    audit.record("admin.delete", name)
    flash(f"Admin {name} removed.", "info")
    return redirect(url_for("account.index"))


@bp.get("/audit")
@access.admin_required
def audit_log() -> str:
    """The newest audit log entries (who changed what, from where)."""
    page = max(0, min(request.args.get("page", 0, type=int) or 0, 10_000))
    entries = audit.recent(AUDIT_PAGE + 1, page * AUDIT_PAGE)
    return render_template("account/audit.html", entries=entries[:AUDIT_PAGE], page=page,
                           more=len(entries) > AUDIT_PAGE)
