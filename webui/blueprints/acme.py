"""`/.well-known/acme-challenge/<token>`: the HTTP-01 answers (RFC 8555 8.3) that
`appliance/tls/acme_client.py` writes while an order is open. Public: the CA asks from
the internet, over plain HTTP, with no session. Also gives templates `tls_certificate()`
(names, issuer, expiry of the certificate in use) for the dashboard."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from appliance.tls.acme_client import CertInfo, cert_info, read_challenge
from webui import services
from webui.security import public

bp = Blueprint("acme", __name__)


@bp.get("/.well-known/acme-challenge/<token>")
@public
def challenge(token: str) -> Response:
    """The key authorization of an open challenge; 404 for any other token (a strict
    base64url charset, so no path can be named)."""
    body = read_challenge(services.settings().data_dir, token)
    if body is None:
        abort(404)
    # RFC 8555 8.3's example answer is application/octet-stream with the bare key
    # authorization as the body.
    return Response(body, mimetype="application/octet-stream")


def current_certificate() -> CertInfo | None:
    """The certificate the engine and console use (None when it cannot be read)."""
    return cert_info(services.settings().data_path("tls.cert_file"))


@bp.app_context_processor
def _template_helpers() -> dict[str, object]:
    return {"tls_certificate": current_certificate}
