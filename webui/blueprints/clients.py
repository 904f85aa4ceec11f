"""Mail client self-configuration: Thunderbird autoconfig, Microsoft Autodiscover (POX) and an
Apple `.mobileconfig` profile, so clients set themselves up from the address alone.

Autoconfig and Autodiscover answer anyone (clients ask before they have a password), and
only for local domains (else 404); they say nothing about whether an account exists. The
profile is for a logged-in user's own address (an admin may name any account). Host names
and ports come from the settings (`server.hostname`, `listen.*_port`).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue

from appliance.core.addresses import AddressError, normalise_domain, parse_address
from appliance.storage.directory import DirectoryError
from webui import client_config, services
from webui.access import current_user, login_required
from webui.csrf import exempt
from webui.dns_check import facts_from_settings
from webui.security import public

bp = Blueprint("clients", __name__)

MAX_ADDRESS = 254               # RFC 5321 4.5.3.1.3 (a path without its brackets)
MAX_AUTODISCOVER_BODY = 16 * 1024   # a real request is about 400 bytes


def _local(domain: str) -> str:
    """`domain` as a local domain's A-label, else 404."""
    if len(domain) > MAX_ADDRESS:
        abort(404)
    try:
        name = normalise_domain(domain)
    except AddressError:
        abort(404)
    if not services.directory().is_local_domain(name):
        abort(404)
    return name


def _address(text: str) -> str:
    """A syntactically valid address in a local domain, else 404."""
    if len(text) > MAX_ADDRESS:
        abort(404)
    try:
        address = parse_address(text.strip())
    except AddressError:
        abort(404)
    _local(address.domain)
    return str(address)


def _host_domain(prefix: str) -> str:
    """The domain named by the Host header (`<prefix><domain>` or the domain itself)."""
    host = request.host.lower()
    if host.startswith("["):
        abort(404)
    host = host.rsplit(":", 1)[0].rstrip(".")
    return host.removeprefix(prefix)


@bp.get("/.well-known/autoconfig/mail/config-v1.1.xml")
@bp.get("/mail/config-v1.1.xml")
@public
def autoconfig() -> ResponseReturnValue:
    """Thunderbird's ISPDB format (clientConfig 1.1); the domain from `emailaddress=`, or
    from the Host (`autoconfig.<domain>` or `<domain>`)."""
    typed = request.args.get("emailaddress", "")
    domain = _address(typed).rpartition("@")[2] if typed else _local(
        _host_domain("autoconfig."))
    body = client_config.autoconfig_xml(domain, facts_from_settings(services.settings()))
    return Response(body, mimetype="application/xml")


@bp.post("/autodiscover/autodiscover.xml")
@bp.post("/Autodiscover/Autodiscover.xml")
@public
@exempt
def autodiscover() -> ResponseReturnValue:
    """Outlook's POX Autodiscover: the request names the address; the answer gives IMAP,
    POP3 and SMTP settings with the address as login name."""
    if (request.content_length or 0) > MAX_AUTODISCOVER_BODY:
        abort(413)
    body = request.stream.read(MAX_AUTODISCOVER_BODY + 1)
    if len(body) > MAX_AUTODISCOVER_BODY:
        abort(413)
    try:
        typed = client_config.autodiscover_address(body)
    except client_config.BadRequestXmlError as exc:
        abort(400, str(exc))
    address = _address(typed)
    reply = client_config.autodiscover_xml(address, facts_from_settings(services.settings()))
    return Response(reply, mimetype="application/xml")


@bp.get("/clients")
@login_required
def setup() -> ResponseReturnValue:
    """How to set up a mail app: the server settings and the Apple profile's link."""
    user = current_user()
    assert user is not None
    address = user.name if not user.is_admin else ""
    return render_template("clients/setup.html", address=address,
                           facts=facts_from_settings(services.settings()))


@bp.get("/clients/apple.mobileconfig")
@login_required
def mobileconfig() -> ResponseReturnValue:
    """The `.mobileconfig` profile of the logged-in user (an admin: of `?address=`)."""
    user = current_user()
    assert user is not None
    address = user.name
    if user.is_admin:
        address = _address(request.args.get("address", ""))
        try:
            services.directory().get_account(address)
        except DirectoryError:
            abort(404)
    body = client_config.mobileconfig(address, facts_from_settings(services.settings()))
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", address.replace("@", "_at_"))
    return Response(body, mimetype="application/x-apple-aspen-config", headers={
        "Content-Disposition": f'attachment; filename="{filename}.mobileconfig"'})
