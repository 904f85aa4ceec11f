"""The DNS page (admins): the records each local domain must publish, their last live check,
the server's reverse DNS, port 25 and blocklist checks, alerts, re-check on demand, zone
file download; and the MTA-STS policy served to the world at `mta-sts.<domain>`.

Pages show stored results only (fast); a check runs when the admin asks (POST /dns/check)
or daily (`mailstead dns check`, `dns_store.daily_recheck`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.core.addresses import AddressError, normalise_domain
from webui import audit, dns_store, services
from webui.access import admin_required
from webui.dns_check import SERVER, Result, domain_records, facts_from_settings
from webui.dns_records import Record, mta_sts_policy, zone_file
from webui.security import public

bp = Blueprint("dns", __name__)

MAX_HOST = 253 + len("mta-sts.")


@dataclass(frozen=True)
class Row:
    """One line of a domain's table: the record to publish and its last check, if any."""

    record: Record
    result: Result | None
    checked_at: int | None

    @property
    def state(self) -> str:
        return self.result.state if self.result is not None else "unchecked"

    @property
    def shows_found(self) -> bool:
        """Whether "found" says more than "as published" (not ok, or other text)."""
        if self.result is None or self.result.state == "missing":
            return False
        return self.result.state != "ok" or self.result.found.rstrip(".") not in (
            self.record.value.rstrip("."), "")


def _local_domain(name: str) -> str:
    """`name` as a local domain's A-label, else 404."""
    if len(name) > MAX_HOST:
        abort(404)
    try:
        domain = normalise_domain(name)
    except AddressError:
        abort(404)
    if not services.directory().is_local_domain(domain):
        abort(404)
    return domain


def _rows(domain: str) -> list[Row]:
    stored = {s.result.key: s for s in dns_store.latest(services.db(), domain)}
    rows = []
    for record in domain_records(services.settings(), domain):
        found = stored.get(record.key)
        rows.append(Row(record, found.result if found else None,
                        found.checked_at if found else None))
    return rows


@bp.get("/dns")
@admin_required
def index() -> ResponseReturnValue:
    domains = services.directory().list_domains()
    chosen = request.args.get("domain", "")
    domain = _local_domain(chosen) if chosen else (domains[0] if domains else "")
    rows = _rows(domain) if domain else []
    server = [s.result for s in dns_store.latest(services.db(), SERVER)]
    counts = {state: sum(1 for r in rows if r.state == state)
              for state in ("ok", "wrong", "missing", "error", "unchecked")}
    return render_template(
        "dns/index.html", domains=domains, domain=domain, rows=rows, server=server,
        counts=counts, alerts=dns_store.alerts(services.db()),
        last_checked=dns_store.last_checked(services.db()),
        facts=facts_from_settings(services.settings()))


@bp.get("/dns/<domain>.zone")
@admin_required
def zone(domain: str) -> ResponseReturnValue:
    name = _local_domain(domain)
    settings = services.settings()
    text = zone_file(name, facts_from_settings(settings), domain_records(settings, name))
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="{name}.zone"'})


@bp.post("/dns/check")
@admin_required
def check() -> ResponseReturnValue:
    typed = request.form.get("domain", "")
    domains = [_local_domain(typed)] if typed else None
    again = dns_store.checked_before(services.db(), domains)
    try:
        alerts = dns_store.check_and_save(services.settings(), services.db(), domains)
    except ValueError as exc:       # a malformed outbound.resolver
        flash(f"The DNS check could not run: {exc}", "error")
        return redirect(url_for(".index", domain=typed or None))
    audit.record("dns.check", typed or "all domains", changes=str(len(alerts)))
    flash(_checked_message(again, len(alerts)), "success")
    return redirect(url_for(".index", domain=typed or None))


def _checked_message(again: bool, changes: int) -> str:
    """The flash after a check: a first check has nothing to compare with."""
    if not again:
        return "DNS checked for the first time: each record's state is shown below."
    if not changes:
        return "DNS checked: nothing changed since the last check."
    return f"DNS checked: {changes} record(s) changed since the last check (see Changes)."


@bp.get("/.well-known/mta-sts.txt")
@public
def mta_sts() -> ResponseReturnValue:
    """RFC 8461 3.3: the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt, for
    local domains only, as text/plain; no login (senders fetch it)."""
    host = request.host.lower()
    if host.startswith("["):
        abort(404)
    host = host.rsplit(":", 1)[0].rstrip(".")
    if not host.startswith("mta-sts."):
        abort(404)
    _local_domain(host.removeprefix("mta-sts."))
    policy = mta_sts_policy(facts_from_settings(services.settings()))
    return Response(policy, mimetype="text/plain")


@bp.app_template_filter("dns_time")
def dns_time(stamp: int) -> str:
    """Unix seconds as `YYYY-MM-DD HH:MM UTC`."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
