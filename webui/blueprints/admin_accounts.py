"""Accounts: list (paged and filtered in SQL), create, reset password, quota, enable or
disable, delete with the address typed to confirm, and the account's app passwords.

Accounts are named by their row id in URLs (a local part may hold `/`, `?` or `%`).
Deleting an account keeps its mail in the data directory: the console does not remove
mail files (DESIGN.md); the page says where it stays.
"""

from __future__ import annotations

import sqlite3

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.auth.passwords import Passwords
from appliance.core.addresses import Address, AddressError, parse_address
from appliance.storage.app_passwords import AppPasswordError, AppPasswordStore
from appliance.storage.directory import Account, DirectoryError
from appliance.storage.maildir.store import create_maildir
from webui import audit, services
from webui.blueprints.admin_common import (
    FormError,
    check_strong_password,
    form_int,
    form_text,
    guard,
    paged,
    search_arg,
)
from webui.sessions import end_sessions_of

bp = Blueprint("admin_accounts", __name__, url_prefix="/admin/accounts")
guard(bp)

MAX_LOCAL_INPUT = 64             # RFC 5321 4.5.3.1.1 (the address is checked again)
MAX_DOMAIN_INPUT = 253
MAX_PASSWORD_INPUT = 1024        # auth.passwords.MAX_PASSWORD_LENGTH
MIB = 1024 * 1024
MAX_QUOTA_MIB = 16 * 1024 * 1024     # 16 TiB: more than any appliance disk


def _account_by_id(account_id: int) -> Account:
    row = services.db().execute(
        "SELECT a.local_part, d.name FROM accounts a JOIN domains d ON d.id = a.domain_id "
        "WHERE a.id = ?", (account_id,)).fetchone()
    if row is None:
        abort(404)
    return services.directory().get_account(f"{row[0]}@{row[1]}")


def _passwords() -> Passwords:
    return Passwords.from_settings(services.settings())


def _app_passwords() -> AppPasswordStore:
    return AppPasswordStore(services.db(), _passwords())


@bp.get("/")
def index(error: str = "", status: int = 200) -> ResponseReturnValue:
    query, domain = search_arg("q").casefold(), search_arg("domain")
    directory = services.directory()
    # Only the shown page is read (SQL LIMIT/OFFSET): the page costs the same with 10 or
    # 100,000 accounts.
    total = directory.count_accounts(domain or None, query) if _known(domain) else 0
    page = paged(total, lambda offset, limit: directory.list_accounts(
        domain or None, contains=query, limit=limit, offset=offset))
    domains = directory.list_domains()
    return render_template("admin/accounts.html", page=page, query=query,
                           domain=domain, domains=domains, error=error,
                           form=request.form), status


def _known(domain: str) -> bool:
    return not domain or services.directory().is_local_domain(domain)


@bp.post("/")
def create() -> ResponseReturnValue:
    try:
        local = form_text("local", "Name", MAX_LOCAL_INPUT)
        domain = form_text("domain", "Domain", MAX_DOMAIN_INPUT)
        address = _local_address(local, domain)
        password = request.form.get("password", "")[:MAX_PASSWORD_INPUT + 1]
        check_strong_password(password, request.form.get("password2", ""), address)
        quota = form_int("quota_mib", "Quota (MiB)", 0, MAX_QUOTA_MIB)
        account = services.directory().add_account(str(address), _passwords().hash(password),
                                                    quota * MIB)
    except (FormError, AddressError, DirectoryError) as exc:
        return index(str(exc), 400)
    create_maildir(services.settings().data_dir / account.maildir)
    audit.record("account.create", account.address, quota_bytes=str(account.quota_bytes))
    flash(f"Created account {account.address}.", "success")
    return redirect(url_for(".show", account_id=account.id))


def _local_address(local: str, domain: str) -> Address:
    """`local@domain` validated, in a domain this server receives mail for."""
    address = parse_address(f"{local}@{domain}")
    if not services.directory().is_local_domain(address.domain):
        raise FormError(f"{address.domain} is not one of this server's domains: add it first")
    return address


@bp.get("/<int:account_id>")
def show(account_id: int, error: str = "", status: int = 200) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    return render_template("admin/account.html", account=account, error=error,
                           app_passwords=_app_passwords().list(account.address),
                           quota_mib=account.quota_bytes // MIB), status


@bp.post("/<int:account_id>/password")
def reset_password(account_id: int) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    try:
        password = request.form.get("password", "")[:MAX_PASSWORD_INPUT + 1]
        check_strong_password(password, request.form.get("password2", ""),
                              parse_address(account.address))
    except FormError as exc:
        return show(account_id, str(exc), 400)
    services.directory().set_password_hash(account.address, _passwords().hash(password))
    revoked = 0
    if request.form.get("revoke_app_passwords"):
        revoked = _app_passwords().revoke_all(account.address)
    end_sessions_of("user", account.address)      # its console sessions log in again
    audit.record("account.password_reset", account.address, app_passwords_revoked=str(revoked))
    flash(f"New password set for {account.address}"
          + (f"; {revoked} app password(s) revoked." if revoked else "."), "success")
    return redirect(url_for(".show", account_id=account_id))


@bp.post("/<int:account_id>/quota")
def set_quota(account_id: int) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    try:
        quota = form_int("quota_mib", "Quota (MiB)", 0, MAX_QUOTA_MIB)
    except FormError as exc:
        return show(account_id, str(exc), 400)
    services.directory().set_quota(account.address, quota * MIB)
    audit.record("account.quota", account.address, quota_bytes=str(quota * MIB))
    flash(f"Quota of {account.address}: " + (f"{quota} MiB." if quota else "no limit."),
          "success")
    return redirect(url_for(".show", account_id=account_id))


@bp.post("/<int:account_id>/enabled")
def set_enabled(account_id: int) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    enabled = request.form.get("enabled") == "1"
    services.directory().set_enabled(account.address, enabled)
    if not enabled:
        end_sessions_of("user", account.address)
    audit.record("account.enable" if enabled else "account.disable", account.address)
    flash(f"{account.address} is " + ("enabled: it can log in and receive mail again."
                                      if enabled else
                                      "disabled: logins and new mail are refused."), "success")
    return redirect(url_for(".show", account_id=account_id))


@bp.post("/<int:account_id>/app-passwords/<int:password_id>/revoke")
def revoke_app_password(account_id: int, password_id: int) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    try:
        label = _app_passwords().revoke(account.address, password_id)
    except AppPasswordError as exc:
        return show(account_id, str(exc), 404)
    audit.record("account.app_password_revoke", account.address, label=label)
    flash(f"Revoked app password “{label}” of {account.address}.", "success")
    return redirect(url_for(".show", account_id=account_id))


@bp.get("/<int:account_id>/delete")
def confirm_delete(account_id: int, error: str = "", status: int = 200) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    key = parse_address(account.address).key
    leading_here = [a for a in services.directory().list_aliases() if _key(a.target) == key]
    return render_template("admin/account_delete.html", account=account, error=error,
                           maildir=services.settings().data_dir / account.maildir,
                           aliases=leading_here), status


@bp.post("/<int:account_id>/delete")
def delete(account_id: int) -> ResponseReturnValue:
    account = _account_by_id(account_id)
    try:
        typed = form_text("confirm", "The address", MAX_LOCAL_INPUT + MAX_DOMAIN_INPUT + 1)
        if _key(typed) != _key(account.address):
            raise FormError(f"type the address, {account.address}, to delete the account")
        services.directory().remove_account(account.address)
    except (FormError, DirectoryError, sqlite3.IntegrityError) as exc:
        return confirm_delete(account_id, str(exc), 400)
    maildir = services.settings().data_dir / account.maildir
    audit.record("account.delete", account.address, mail_kept_in=str(account.maildir))
    flash(f"Deleted account {account.address}; its mail is kept in {maildir}, its "
          "calendars and contacts in the DAV store.", "success")
    return redirect(url_for(".index"))


def _key(address: str) -> str:
    try:
        return parse_address(address).key
    except AddressError:
        return ""
