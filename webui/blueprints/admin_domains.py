"""Domains: list (with their accounts and aliases counted), add, remove with confirmation.

A domain is stored as its lower-case A-label (IDNA 2008, `appliance.core.addresses`) and
shown with its Unicode form beside it. Adding one also creates its DKIM keys, as the CLI
does; removing one is refused while accounts or aliases remain (the page lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

import idna
from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from appliance.core.addresses import AddressError, normalise_domain
from appliance.dkim import keys
from appliance.storage.directory import DirectoryError
from webui import audit, services
from webui.blueprints.admin_common import FormError, form_text, guard

bp = Blueprint("admin_domains", __name__, url_prefix="/admin/domains")
guard(bp)

MAX_DOMAIN_INPUT = 253     # RFC 1035 2.3.4 (as typed; the A-label is checked again)

_COUNTS = ("SELECT d.name, "
           "(SELECT count(*) FROM accounts a WHERE a.domain_id = d.id), "
           "(SELECT count(*) FROM aliases l WHERE l.domain_id = d.id) "
           "FROM domains d ORDER BY d.name")


@dataclass(frozen=True)
class DomainRow:
    """A domain with its Unicode form and what it holds."""

    name: str
    unicode: str
    accounts: int
    aliases: int


def unicode_form(name: str) -> str:
    """The U-label form of an A-label domain, or the name itself if it cannot be decoded."""
    try:
        return str(idna.decode(name))
    except (idna.IDNAError, UnicodeError):
        return name


def domain_rows() -> list[DomainRow]:
    """Every domain with its counts, in one query."""
    return [DomainRow(r[0], unicode_form(r[0]), int(r[1]), int(r[2]))
            for r in services.db().execute(_COUNTS)]


@bp.get("/")
def index(error: str = "", typed: str = "", status: int = 200) -> ResponseReturnValue:
    return render_template("admin/domains.html", domains=domain_rows(), error=error,
                           typed=typed), status


@bp.post("/")
def add() -> ResponseReturnValue:
    typed = ""
    try:
        typed = form_text("domain", "Domain", MAX_DOMAIN_INPUT)
        name = services.directory().add_domain(typed)
    except (FormError, AddressError, DirectoryError) as exc:
        return index(str(exc), typed, 400)
    dkim = keys.ensure_keys(services.settings().data_dir, name)
    audit.record("domain.add", name, dkim_selectors=f"{dkim.active.rsa} {dkim.active.ed25519}")
    flash(f"Added domain {name}. Publish its DNS records (DKIM selectors "
          f"{dkim.active.rsa} and {dkim.active.ed25519}) before sending mail.", "success")
    return redirect(url_for(".index"))


@bp.get("/<name>/remove")
def confirm_remove(name: str, error: str = "", status: int = 200) -> ResponseReturnValue:
    row = _existing(name)
    if row is None:
        flash(f"No such domain: {name}", "error")
        return redirect(url_for(".index"))
    return render_template("admin/domain_remove.html", domain=row, error=error), status


@bp.post("/<name>/remove")
def remove(name: str) -> ResponseReturnValue:
    row = _existing(name)
    if row is None:
        flash(f"No such domain: {name}", "error")
        return redirect(url_for(".index"))
    try:
        typed = form_text("confirm", "The domain's name", MAX_DOMAIN_INPUT)
        if _normalised(typed) != row.name:
            raise FormError(f"type the domain's name, {row.name}, to remove it")
        services.directory().remove_domain(row.name)
    except (FormError, DirectoryError) as exc:
        return confirm_remove(name, str(exc), 400)
    audit.record("domain.remove", row.name)
    flash(f"Removed domain {row.name}. Its DKIM keys stay in the data directory.", "success")
    return redirect(url_for(".index"))


def _existing(name: str) -> DomainRow | None:
    wanted = _normalised(name)
    return next((row for row in domain_rows() if row.name == wanted), None)


def _normalised(name: str) -> str:
    try:
        return normalise_domain(name)
    except AddressError:
        return ""
