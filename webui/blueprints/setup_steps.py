"""The first-boot wizard, part two (admins only): hostname and primary domain, time zone,
TLS certificate, DKIM keys, and the hand-over to the DNS page."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.core.addresses import AddressError, normalise_domain
from appliance.dkim import keys
from appliance.storage.directory import DirectoryError
from appliance.tls import acme_client, acme_settings
from appliance.tls.certs import make_self_signed
from webui import access, audit, services, setup_state

bp = Blueprint("setup_steps", __name__, url_prefix="/setup")

MAX_NAME = 253
MAX_EMAIL = 254      # RFC 5321 4.5.3.1.3 path limit, less the brackets
TLS_MODES = {"self-signed": "A self-signed certificate (now)",
             "acme": "Let's Encrypt (ACME, HTTP-01): the box must be reachable from the "
                     "internet on port 80 under its host name"}


def _hostname() -> str:
    """The effective `server.hostname` (mailstead.db's, once this wizard stored it)."""
    return services.settings().get_str("server.hostname")


def _domain_name(text: str, what: str) -> str:
    """A domain typed into a form: an A-label with at least two labels, or ValueError."""
    if len(text) > MAX_NAME:
        raise ValueError(f"the {what} is longer than {MAX_NAME} characters")
    try:
        name = normalise_domain(text)
    except AddressError as exc:
        raise ValueError(f"the {what} is not a valid domain name") from exc
    if "." not in name:
        raise ValueError(f"the {what} needs at least one dot (e.g. mail.example.com)")
    return name


@bp.route("/host", methods=["GET", "POST"])
@access.admin_required
def host() -> str | Response | tuple[str, int]:
    conn = services.db()
    domain = setup_state.get(conn, "primary_domain") or ""
    if request.method == "GET":
        return render_template("setup/host.html", hostname=_hostname(), domain=domain)
    typed_host = request.form.get("hostname", "").strip()
    typed_domain = request.form.get("domain", "").strip()
    try:
        hostname = _domain_name(typed_host, "hostname")
        domain = _domain_name(typed_domain, "mail domain")
    except ValueError as exc:
        flash(str(exc), "error")
        return render_template("setup/host.html", hostname=typed_host[:MAX_NAME],
                               domain=typed_domain[:MAX_NAME]), 400
    directory = services.directory()
    if domain not in directory.list_domains():
        try:
            directory.add_domain(domain)
        except DirectoryError as exc:
            flash(str(exc), "error")
            return render_template("setup/host.html", hostname=hostname, domain=domain), 400
        audit.record("domain.create", domain, via="setup wizard")
    setup_state.put(conn, "hostname", hostname)
    setup_state.put(conn, "primary_domain", domain)
    setup_state.put_setting(conn, "server.hostname", hostname)   # what everything reads
    services.settings_changed()
    setup_state.mark_done(conn, "host")
    audit.record("setup.host", hostname, domain=domain)
    return redirect(url_for("setup.start"))


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


@bp.route("/timezone", methods=["GET", "POST"])
@access.admin_required
def timezone() -> str | Response | tuple[str, int]:
    conn = services.db()
    current = services.settings().get_str("server.timezone")
    if request.method == "GET":
        return render_template("setup/timezone.html", zones=time_zones(), current=current)
    chosen = request.form.get("timezone", "")
    if chosen not in time_zones():
        flash("Choose a time zone from the list.", "error")
        return render_template("setup/timezone.html", zones=time_zones(), current=current), 400
    setup_state.put(conn, "timezone", chosen)
    setup_state.put_setting(conn, "server.timezone", chosen)
    services.settings_changed()
    setup_state.mark_done(conn, "timezone")
    audit.record("setup.timezone", chosen)
    return redirect(url_for("setup.start"))


def _certificate_names() -> list[str]:
    """DNS names of the current certificate ([] if there is none or it cannot be read)."""
    info = acme_client.cert_info(services.settings().data_path("tls.cert_file"))
    return list(info.names) if info else []


def _tls_page(status: int = 200, **extra: object) -> tuple[str, int]:
    conn = services.db()
    current = services.settings()
    page = render_template("setup/tls.html", modes=TLS_MODES, hostname=_hostname(),
                           current=setup_state.get(conn, "tls_mode") or "self-signed",
                           names=_certificate_names(),
                           email=current.get_str("tls.acme_email"),
                           directory=current.get_str("tls.acme_directory"), **extra)
    return page, status


@bp.route("/tls", methods=["GET", "POST"])
@access.admin_required
def tls() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return _tls_page()
    mode = request.form.get("mode", "")
    if mode not in TLS_MODES:
        flash("Choose one of the certificate options.", "error")
        return redirect(url_for("setup_steps.tls"))
    hostname = _hostname()
    current = services.settings()
    if hostname not in _certificate_names():
        make_self_signed(hostname, current.data_path("tls.cert_file"),
                         current.data_path("tls.key_file"))
        audit.record("tls.self_signed", hostname)
    if mode == "acme":
        return _request_acme(hostname, request.form.get("email", "").strip())
    conn = services.db()
    setup_state.put(conn, "tls_mode", mode)
    setup_state.mark_done(conn, "tls")
    audit.record("setup.tls", hostname, mode=mode)
    return redirect(url_for("setup.start"))


def _request_acme(hostname: str, email: str) -> tuple[str, int]:
    """Order the certificate now; on failure the self-signed one stays and ACME stays off
    (the daily renewal would otherwise retry a set-up the admin has not fixed yet)."""
    conn = services.db()
    try:
        if len(email) > MAX_EMAIL:
            raise ValueError(f"the contact address is longer than {MAX_EMAIL} characters")
        setup_state.put_setting(conn, "tls.acme_email", acme_settings.parse_contact(email))
    except ValueError as exc:          # SettingsError is a ValueError too
        flash(f"Contact address: {exc}", "error")
        return _tls_page(400)
    services.settings_changed()
    current = services.settings()
    names = acme_client.wanted_names(current, services.directory().list_domains())
    try:
        info = acme_client.issue(acme_client.AcmeConfig.from_settings(current), names)
    except acme_client.AcmeError as exc:
        audit.record("tls.acme_failed", hostname, reason=str(exc)[:500])
        return _tls_page(502, acme_error=str(exc), acme_names=names)
    setup_state.put_setting(conn, "tls.acme_enabled", "true")
    services.settings_changed()
    setup_state.put(conn, "tls_mode", "acme")
    setup_state.mark_done(conn, "tls")
    audit.record("tls.acme_issued", hostname, names=", ".join(info.names),
                 not_after=info.not_after.isoformat())
    return _tls_page(200, acme_result=info)


@bp.route("/dkim", methods=["GET", "POST"])
@access.admin_required
def dkim() -> str | Response:
    conn = services.db()
    domain = setup_state.get(conn, "primary_domain")
    if domain is None:
        return redirect(url_for("setup_steps.host"))
    data_dir = services.settings().data_dir
    if request.method == "POST":
        state = keys.ensure_keys(data_dir, domain)
        setup_state.mark_done(conn, "dkim")
        audit.record("dkim.ensure_keys", domain, selector=state.active.base)
        return redirect(url_for("setup.start"))
    existing = keys.load_state(data_dir, domain)
    records = keys.pair_records(data_dir, domain, existing.active) if existing else []
    return render_template("setup/dkim.html", domain=domain, records=records)


@bp.get("/done")
@access.admin_required
def done() -> str:
    dns_url = url_for("dns.index") if "dns.index" in current_app.view_functions else "/dns"
    return render_template("setup/done.html", dns_url=dns_url,
                           domain=setup_state.get(services.db(), "primary_domain") or "",
                           acme=setup_state.get(services.db(), "tls_mode") == "acme")
