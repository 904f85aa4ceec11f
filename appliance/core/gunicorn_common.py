"""What every Mailstead gunicorn sets alike (the console, the public paths, DAV): the TLS
policy and files, JSON-friendly logs whose access lines name the path without its query
string (a query may carry a token or an address), no trusted proxy, and no control socket.
Each `gunicorn.conf.py` lays these into its module namespace, where gunicorn reads its
settings, and keeps to itself what differs (bind, workers, timeouts, request limits).
"""

from __future__ import annotations

from typing import Any

from appliance.settings import Settings
from appliance.tls.contexts import gunicorn_ssl_context

# %(U)s, never %(r)s: the path without its query string; no header (Authorization) either
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'


def common_options(settings: Settings, proc_name: str, *, tls: bool) -> dict[str, Any]:
    """The shared gunicorn settings; with `tls`, the appliance's certificate and key."""
    options: dict[str, Any] = {
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": proc_name,
        "control_socket_disable": True,   # gunicorn 24+'s ~/.gunicorn/gunicorn.ctl: shared
        "forwarded_allow_ips": "",        # no proxy in front: never trust X-Forwarded-*
        "ssl_context": gunicorn_ssl_context,   # the engine's TLS policy: 1.2+, AEAD ciphers
    }
    if tls:
        options["certfile"] = str(settings.data_path("tls.cert_file"))
        options["keyfile"] = str(settings.data_path("tls.key_file"))
    return options
