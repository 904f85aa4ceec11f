"""`/me`: a mail user's own account — password, app passwords, two-factor login (TOTP),
vacation reply and forwarding (stored for the engine: appliance/storage/account_settings.py).

Only logged-in mail users reach these pages (an admin gets 403: admins have no mailbox).
Every change is checked by the storage layer's rules, recorded in the audit log without
secrets, and answered with the page again (400) naming the field when it is refused.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.auth.guard import Outcome
from appliance.auth.passwords import MAX_PASSWORD_LENGTH, Passwords
from appliance.core.addresses import parse_address
from appliance.storage.account_settings import (
    MAX_BODY_LENGTH,
    MAX_FORWARD_TARGETS,
    MAX_SUBJECT_LENGTH,
    AccountSettings,
    AccountSettingsError,
    Forwarding,
    Vacation,
)
from appliance.storage.account_totp import AccountTotp, TotpError, provisioning_uri
from appliance.storage.app_passwords import (
    MAX_APP_PASSWORDS,
    MAX_LABEL_LENGTH,
    AppPasswordError,
    AppPasswordStore,
)
from webui import access, audit, guards, services
from webui.blueprints.admin_common import FormError, check_strong_password, form_text, when
from webui.blueprints.setup import qr_data_uri
from webui.sessions import end_sessions_of

bp = Blueprint("self", __name__, url_prefix="/me")

MAX_CODE_FAILURES = 5          # wrong TOTP codes per session before the form pauses
CODE_PAUSE_SECONDS = 900
MAX_TARGETS_FIELD = MAX_FORWARD_TARGETS * 256      # one address per line, each <= 254
NO_STORE = {"Cache-Control": "no-store"}           # pages that show a secret
_TARGET_SPLIT = re.compile(r"[\r\n,;]+")     # addresses have no unquoted commas


@bp.before_request
def _mail_users_only() -> ResponseReturnValue | None:
    user = access.current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if user.is_admin:
        abort(403)
    return None


@bp.app_template_filter("self_when")
def _when(timestamp: float | None) -> str:
    return when(timestamp)


def _address() -> str:
    user = access.current_user()
    assert user is not None
    return user.name


def _passwords() -> Passwords:
    return Passwords.from_settings(services.settings())


def _app_passwords() -> AppPasswordStore:
    return AppPasswordStore(services.db(), _passwords())


def _totp() -> AccountTotp:
    return AccountTotp(services.db())


def _account_settings() -> AccountSettings:
    return AccountSettings(services.db())


# -- overview ------------------------------------------------------------------------------

@bp.get("/")
def index() -> str:
    address = _address()
    settings = _account_settings()
    return render_template(
        "self/index.html", address=address, totp=_totp().state(address),
        app_password_count=len(_app_passwords().list(address)),
        vacation=settings.vacation(address), forwarding=settings.forwarding(address),
        today=datetime.datetime.now(datetime.UTC).date())     # the engine decides in UTC


# -- password ------------------------------------------------------------------------------

@bp.route("/password", methods=["GET", "POST"])
def password() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("self/password.html")
    address = _address()
    try:
        new = _change_password(address)
    except FormError as exc:
        return render_template("self/password.html", error=str(exc)), 400
    _store_password(address, new)
    end_sessions_of("user", address, keep=session)    # other browsers log in again
    revoked = _app_passwords().revoke_all(address) if request.form.get("revoke_app") else 0
    audit.record("self.password_change", address, app_passwords_revoked=str(revoked))
    flash("Your password is changed. Mail programs that use it need the new one."
          + (f" {revoked} app password(s) revoked." if revoked else ""), "info")
    return redirect(url_for("self.index"))


def _change_password(address: str) -> str:
    """The new password once the old one is right and the new one strong; else FormError."""
    old = request.form.get("old_password", "")
    new = request.form.get("password", "")
    again = request.form.get("password2", "")
    if not old or max(len(old), len(new), len(again)) > MAX_PASSWORD_LENGTH:
        raise FormError("enter your current password and the new one twice")
    result = guards.check_password(address, old, request.remote_addr or "")
    if result.outcome is Outcome.LOCKED:
        raise FormError("too many wrong passwords: try again later")
    if result.outcome is Outcome.UNAVAILABLE:
        raise FormError("the console is busy: try again in a moment")
    if not result.ok:
        raise FormError("your current password is not right")
    if new == old:
        raise FormError("the new password is the same as the current one")
    check_strong_password(new, again, parse_address(address))
    return new


def _store_password(address: str, new: str) -> None:
    services.directory().set_password_hash(address, _passwords().hash(new))


# -- app passwords -------------------------------------------------------------------------

@bp.get("/app-passwords")
def app_passwords() -> str:
    return _app_passwords_page()


def _app_passwords_page(**extra: Any) -> str:
    return render_template("self/app_passwords.html",
                           app_passwords=_app_passwords().list(_address()),
                           max_app_passwords=MAX_APP_PASSWORDS,
                           max_label=MAX_LABEL_LENGTH, **extra)


@bp.post("/app-passwords")
def create_app_password() -> ResponseReturnValue:
    address = _address()
    try:
        label = form_text("label", "The name", MAX_LABEL_LENGTH)
        made = _app_passwords().create(address, label)
    except (FormError, AppPasswordError) as exc:
        return _app_passwords_page(error=str(exc)), 400
    audit.record("self.app_password_create", address, label=made.record.label)
    # Shown on this response only: never in the session, a flash message or a redirect.
    return _app_passwords_page(created=made), 200, NO_STORE


@bp.post("/app-passwords/<int:password_id>/revoke")
def revoke_app_password(password_id: int) -> ResponseReturnValue:
    address = _address()
    try:
        label = _app_passwords().revoke(address, password_id)
    except AppPasswordError as exc:
        return _app_passwords_page(error=str(exc)), 404
    audit.record("self.app_password_revoke", address, label=label)
    flash(f"App password “{label}” revoked: programs using it can no longer log in.", "info")
    return redirect(url_for("self.app_passwords"))


# -- two-factor login ----------------------------------------------------------------------

@bp.get("/two-factor")
def two_factor() -> ResponseReturnValue:
    return _two_factor_page()


def _two_factor_page(status: int = 200, error: str = "") -> ResponseReturnValue:
    address = _address()
    pending = _totp().pending_secret(address)
    qr = qr_data_uri(provisioning_uri(pending, address)) if pending else None
    page = render_template("self/two_factor.html", state=_totp().state(address),
                           secret=pending, qr=qr, error=error, paused=_codes_paused())
    return page, status, NO_STORE


@bp.post("/two-factor/start")
def start_two_factor() -> ResponseReturnValue:
    try:
        _totp().begin(_address())
    except TotpError as exc:
        return _two_factor_page(400, str(exc))
    return redirect(url_for("self.two_factor"))


@bp.post("/two-factor/confirm")
def confirm_two_factor() -> ResponseReturnValue:
    address = _address()
    if _codes_paused():
        return _two_factor_page(429, "too many wrong codes: wait a few minutes")
    if not _totp().confirm(address, request.form.get("code", "")[:20]):
        _code_failed()
        return _two_factor_page(400, "that code does not match: check the time on your "
                                     "phone and enter the code it shows now")
    audit.record("self.totp_enable", address)
    flash("Two-factor login is on: the console asks for a code after your password.", "info")
    return redirect(url_for("self.two_factor"))


@bp.post("/two-factor/disable")
def disable_two_factor() -> ResponseReturnValue:
    address = _address()
    totp = _totp()
    if totp.enabled(address):
        if _codes_paused():
            return _two_factor_page(429, "too many wrong codes: wait a few minutes")
        if not totp.verify(address, request.form.get("code", "")[:20]):
            _code_failed()
            return _two_factor_page(400, "enter a current code from your app to turn "
                                         "two-factor login off")
        audit.record("self.totp_disable", address)
        flash("Two-factor login is off.", "info")
    totp.disable(address)
    return redirect(url_for("self.two_factor"))


def _codes_paused() -> bool:
    failures = session.get("self_code_failures")
    if not isinstance(failures, list) or len(failures) != 2:
        return False
    count, since = failures
    if time.time() - float(since) > CODE_PAUSE_SECONDS:
        session.pop("self_code_failures", None)
        return False
    return int(count) >= MAX_CODE_FAILURES


def _code_failed() -> None:
    failures = session.get("self_code_failures")
    if isinstance(failures, list) and len(failures) == 2:
        session["self_code_failures"] = [int(failures[0]) + 1, failures[1]]
    else:
        session["self_code_failures"] = [1, time.time()]


# -- vacation and forwarding ---------------------------------------------------------------

@bp.route("/vacation", methods=["GET", "POST"])
def vacation() -> ResponseReturnValue:
    address = _address()
    if request.method == "GET":
        return _vacation_page(_account_settings().vacation(address))
    wanted = Vacation(bool(request.form.get("enabled")),
                      request.form.get("subject", "")[:MAX_SUBJECT_LENGTH + 1], "")
    try:
        wanted = Vacation(wanted.enabled, wanted.subject,
                          form_text("body", "The message", MAX_BODY_LENGTH, required=False),
                          _form_date("start", "The first day"), _form_date("end", "The last day"))
        stored = _account_settings().set_vacation(address, wanted)
    except (FormError, AccountSettingsError) as exc:
        return _vacation_page(wanted, str(exc)), 400
    audit.record("self.vacation", address, enabled=str(stored.enabled),
                 start=str(stored.start or ""), end=str(stored.end or ""))
    flash("Vacation reply " + ("on." if stored.enabled else "off."), "info")
    return redirect(url_for("self.vacation"))


def _vacation_page(current: Vacation, error: str = "") -> str:
    return render_template("self/vacation.html", vacation=current, error=error,
                           max_subject=MAX_SUBJECT_LENGTH, max_body=MAX_BODY_LENGTH)


def _form_date(name: str, label: str) -> datetime.date | None:
    text = request.form.get(name, "").strip()
    if not text:
        return None
    try:
        if len(text) != 10:
            raise ValueError(text)
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise FormError(f"{label} must be a date (YYYY-MM-DD)") from None


@bp.route("/forwarding", methods=["GET", "POST"])
def forwarding() -> ResponseReturnValue:
    address = _address()
    if request.method == "GET":
        current = _account_settings().forwarding(address)
        return _forwarding_page("\n".join(current.targets), current.keep_copy)
    text = request.form.get("targets", "")
    keep = bool(request.form.get("keep_copy"))
    try:
        if len(text) > MAX_TARGETS_FIELD:
            raise FormError(f"the addresses are too long: at most {MAX_FORWARD_TARGETS} "
                            "addresses")
        targets = tuple(t.strip() for t in _TARGET_SPLIT.split(text) if t.strip())
        stored = _account_settings().set_forwarding(address, Forwarding(targets, keep))
    except (FormError, AccountSettingsError) as exc:
        return _forwarding_page(text[:MAX_TARGETS_FIELD], keep, str(exc)), 400
    audit.record("self.forwarding", address, targets=", ".join(stored.targets),
                 keep_copy=str(stored.keep_copy))
    flash("Forwarding saved." if stored.targets else "Forwarding off: mail stays here.", "info")
    return redirect(url_for("self.forwarding"))


def _forwarding_page(targets: str, keep_copy: bool, error: str = "") -> str:
    return render_template("self/forwarding.html", targets=targets, keep_copy=keep_copy,
                           error=error, max_targets=MAX_FORWARD_TARGETS)
