"""The first-boot wizard, part two (admins only): hostname and primary domain, time zone,
TLS certificate, DKIM keys, and the hand-over to the DNS page."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from cryptography import x509
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.core.addresses import AddressError, normalise_domain
from appliance.dkim import keys
from appliance.storage.directory import DirectoryError
from appliance.tls.certs import make_self_signed
from webui import access, audit, services, setup_state

bp = Blueprint("setup_steps", __name__, url_prefix="/setup")

MAX_NAME = 253
TLS_MODES = {"self-signed": "A self-signed certificate (now)",
             "acme": "Let's Encrypt (ACME) once the box is reachable from the internet"}


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
    try:
        pem = services.settings().data_path("tls.cert_file").read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return []
    return [str(n) for n in names.value.get_values_for_type(x509.DNSName)]


@bp.route("/tls", methods=["GET", "POST"])
@access.admin_required
def tls() -> str | Response | tuple[str, int]:
    conn = services.db()
    hostname = _hostname()
    if request.method == "GET":
        return render_template("setup/tls.html", modes=TLS_MODES, hostname=hostname,
                               current=setup_state.get(conn, "tls_mode") or "self-signed",
                               names=_certificate_names())
    mode = request.form.get("mode", "")
    if mode not in TLS_MODES:
        flash("Choose one of the certificate options.", "error")
        return redirect(url_for("setup_steps.tls"))
    current = services.settings()
    if hostname not in _certificate_names():
        make_self_signed(hostname, current.data_path("tls.cert_file"),
                         current.data_path("tls.key_file"))
        audit.record("tls.self_signed", hostname)
    setup_state.put(conn, "tls_mode", mode)
    setup_state.mark_done(conn, "tls")
    audit.record("setup.tls", hostname, mode=mode)
    return redirect(url_for("setup.start"))


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
