"""Login and logout: admins by username, mail users by address (mail password, never an app
password), then a TOTP code when they turned it on; all through the login guard
(webui/guards.py)."""

from __future__ import annotations

import time

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.auth.guard import LoginResult, Outcome
from appliance.auth.passwords import MAX_PASSWORD_LENGTH
from appliance.storage.account_totp import AccountTotp
from webui import access, admins, guards, services

bp = Blueprint("auth", __name__)

MAX_USERNAME = 320
TOTP_WINDOW = 300          # seconds between the password and the TOTP code


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target and len(target) <= 2000:
        return target
    return url_for("home.index")


def _client() -> str:
    return request.remote_addr or ""


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        if access.current_user() is not None:
            return redirect(safe_next(request.args.get("next")))
        return render_template("auth/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    next_url = request.form.get("next", "")
    if not username or not password or len(username) > MAX_USERNAME \
            or len(password) > MAX_PASSWORD_LENGTH:
        flash("Enter your username (or mail address) and password.", "error")
        return render_template("auth/login.html", next=next_url, username=username[:100]), 400
    admin, guard_name = _login_name(username)
    result = guards.check_password(guard_name, password, _client())
    if not result.ok:
        return _refused(result, next_url, username)
    user = access.User("admin", admin) if admin is not None \
        else access.User("user", str(result.account))
    if _has_totp(user):
        session.clear()
        session.regenerate()  # type: ignore[attr-defined]
        session["totp_for"] = {"kind": user.kind, "name": user.name, "at": int(time.time()),
                               "next": next_url}
        return redirect(url_for("auth.totp"))
    access.log_in(user)
    return redirect(safe_next(next_url))


def _has_totp(user: access.User) -> bool:
    """Whether this user must give a TOTP code after the password."""
    conn = services.db()
    if user.is_admin:
        found = admins.get(conn, user.name)
        return found is not None and bool(found.totp_secret)
    return AccountTotp(conn).enabled(user.name)


def _login_name(typed: str) -> tuple[str | None, str]:
    """(admin username or None, the name the guard checks). An address is a mail user;
    anything else an admin. A typed address in the admin realm is made unmatchable."""
    if "@" in typed:
        if typed.rpartition("@")[2].strip().lower().rstrip(".") == admins.ADMIN_REALM:
            return None, "\x00" + typed
        return None, typed
    try:
        name = admins.normalise_username(typed)
    except admins.AdminError:
        return None, "\x00" + typed          # malformed: still costs one verification
    return name, admins.guard_name(name)


def _refused(result: LoginResult, next_url: str, username: str) -> tuple[str, int]:
    if result.outcome is Outcome.LOCKED:
        minutes = max(1, round(result.retry_after / 60))
        flash(f"Too many failed attempts. Try again in about {minutes} minute(s).", "error")
        code = 429
    elif result.outcome is Outcome.UNAVAILABLE:
        flash("The console is busy. Try again in a moment.", "error")
        code = 503
    else:
        flash("Wrong username or password.", "error")
        code = 401
    return render_template("auth/login.html", next=next_url, username=username[:100]), code


@bp.route("/login/totp", methods=["GET", "POST"])
def totp() -> str | Response | tuple[str, int]:
    pending = session.get("totp_for")
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > TOTP_WINDOW:
        session.pop("totp_for", None)
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/totp.html")
    kind, name = pending.get("kind"), pending.get("name")
    if kind not in ("admin", "user") or not isinstance(name, str):
        session.pop("totp_for", None)
        return redirect(url_for("auth.login"))
    code = request.form.get("code", "")[:20]
    result = guards.check_totp(kind, name, code, _client())
    if not result.ok:
        if result.outcome is Outcome.LOCKED:
            flash("Too many wrong codes. Try again later.", "error")
            return render_template("auth/totp.html"), 429
        flash("That code is not right (or was already used). Try the next one.", "error")
        return render_template("auth/totp.html"), 401
    access.log_in(access.User("admin" if kind == "admin" else "user", name))
    return redirect(safe_next(pending.get("next")))


@bp.post("/logout")
def logout() -> Response:
    if access.current_user() is None:
        abort(redirect(url_for("auth.login")))
    access.log_out()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
