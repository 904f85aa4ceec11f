"""Aliases and catch-alls: list (grouped by source, paged), add a source with its targets,
remove one target or a whole source.

A source is `local@domain`, or `@domain` for the domain's catch-all; it must be in one of
our domains. Targets are full addresses, local or remote (`appliance.storage.directory`
expands them when mail arrives, an alias before the account of the same name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.core.addresses import AddressError, normalise_domain, parse_address
from appliance.storage.db import immediate_transaction
from appliance.storage.directory import Alias, DirectoryError
from webui import audit, services
from webui.blueprints.admin_common import FormError, form_text, guard, paginate, search_arg

bp = Blueprint("admin_aliases", __name__, url_prefix="/admin/aliases")
guard(bp)

MAX_SOURCE_INPUT = 320           # local part (64) + @ + domain (253), with some slack
MAX_TARGETS = 50                 # per form; more targets suggest a mailing list
MAX_TARGETS_INPUT = MAX_TARGETS * 256
_SEPARATORS = re.compile(r"[,;\r\n]+")     # not spaces: a quoted local part may hold them


@dataclass(frozen=True)
class AliasGroup:
    """One source and every target it leads to."""

    source: str
    targets: tuple[str, ...]

    @property
    def catch_all(self) -> bool:
        return self.source.startswith("@")


def group(aliases: list[Alias]) -> list[AliasGroup]:
    """Aliases (sorted by source, as the directory lists them) grouped by source."""
    groups: dict[str, list[str]] = {}
    for alias in aliases:
        groups.setdefault(alias.source, []).append(alias.target)
    return [AliasGroup(source, tuple(targets)) for source, targets in groups.items()]


def parse_source(text: str) -> str:
    """`local@domain` or `@domain`, validated and normalised (A-label domain)."""
    if text.startswith("@"):
        return "@" + normalise_domain(text[1:])
    return str(parse_address(text))


def parse_targets(text: str) -> list[str]:
    """Addresses separated by commas, semicolons or lines; each one validated."""
    found = [t.strip() for t in _SEPARATORS.split(text) if t.strip()]
    if not found:
        raise FormError("give at least one target address")
    if len(found) > MAX_TARGETS:
        raise FormError(f"at most {MAX_TARGETS} targets at once")
    return list(dict.fromkeys(str(parse_address(t)) for t in found))


@bp.get("/")
def index(error: str = "", status: int = 200) -> ResponseReturnValue:
    query, domain = search_arg("q").casefold(), search_arg("domain")
    domains = services.directory().list_domains()
    known = not domain or domain in domains
    groups = group(services.directory().list_aliases(domain or None)) if known else []
    if query:
        groups = [g for g in groups if query in g.source.casefold()
                  or any(query in t.casefold() for t in g.targets)]
    return render_template("admin/aliases.html", page=paginate(groups), query=query,
                           domain=domain, domains=domains, error=error,
                           form=request.form), status


@bp.post("/")
def add() -> ResponseReturnValue:
    try:
        source = parse_source(form_text("source", "Source", MAX_SOURCE_INPUT))
        targets = parse_targets(form_text("targets", "Targets", MAX_TARGETS_INPUT))
        with immediate_transaction(services.db()):     # all targets or none
            added = [services.directory().add_alias(source, t) for t in targets]
    except (FormError, AddressError, DirectoryError) as exc:
        return index(str(exc), 400)
    audit.record("alias.add", source, targets=", ".join(a.target for a in added))
    flash(f"{_name(source)} now leads to {', '.join(targets)}." + _shadow_note(source),
          "success")
    return redirect(url_for(".index"))


def _name(source: str) -> str:
    return f"The catch-all {source}" if source.startswith("@") else f"Alias {source}"


def _shadow_note(source: str) -> str:
    """A warning when the alias hides an account of the same address."""
    if source.startswith("@"):
        return ""
    try:
        services.directory().get_account(source)
    except DirectoryError:
        return ""
    return (f" Note: {source} is also an account; mail to it now goes to the alias "
            "targets only (add the account itself as a target to keep a copy).")


@bp.post("/remove")
def remove() -> ResponseReturnValue:
    try:
        source = parse_source(form_text("source", "Source", MAX_SOURCE_INPUT))
        target = form_text("target", "Target", MAX_SOURCE_INPUT, required=False) or None
        count = services.directory().remove_alias(source, target)
    except (FormError, AddressError, DirectoryError) as exc:
        return index(str(exc), 400)
    audit.record("alias.remove", source, alias_target=target or "(all)", removed=str(count))
    flash(f"Removed {count} target(s) of {source}.", "success")
    return redirect(url_for(".index"))
