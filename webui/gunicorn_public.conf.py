"""gunicorn settings for the public web listeners (`mailstead console serve --public` and
`--public-http`): `webui.public:create_public_app()`, which answers only the paths the
internet must reach (ACME, autoconfig, Autodiscover, MTA-STS).

$MAILSTEAD_PUBLIC_LISTENER picks the listener: `https` binds `listen.public_tls_port` with
the appliance's certificate (`tls.cert_file`, read again for each connection, so a renewed
certificate is used at once), `http` binds `listen.public_web_port` in plain HTTP. Both on
`listen.console_address`. Tighter than the console's gunicorn.conf.py: these answer anyone,
and every request is small and quick (no password hashing, no DNS lookups), so few threads,
short timeouts and small request heads.
"""

from __future__ import annotations

import os
from typing import Any

from appliance.core import log
from appliance.core.gunicorn_common import common_options
from webui.services import load_console_settings, option_from

_settings = load_console_settings()
_listener = os.environ.get("MAILSTEAD_PUBLIC_LISTENER", "https")
if _listener not in ("https", "http"):
    raise SystemExit(f"MAILSTEAD_PUBLIC_LISTENER={_listener!r}: expected https or http")
_address = str(option_from(_settings, "listen.console_address"))
_port = _settings.get_int("listen.public_tls_port" if _listener == "https"
                          else "listen.public_web_port")

wsgi_app = "webui.public:create_public_app()"
bind = [f"[{_address}]:{_port}" if ":" in _address else f"{_address}:{_port}"]
if os.environ.get("MAILSTEAD_CONSOLE_BIND"):        # tests and `mailstead console --bind`
    bind = [os.environ["MAILSTEAD_CONSOLE_BIND"]]
workers = 1                   # one process: one rate-limit count per client
worker_class = "gthread"
threads = 4
timeout = 15                  # a public request is a file read or a small XML answer
graceful_timeout = 5
keepalive = 2
limit_request_line = 2048     # the longest public URL is autoconfig's ?emailaddress=
limit_request_fields = 32
limit_request_field_size = 4096
# https in dev mode too (the self-signed certificate of ./var/tls/); autoconfig's query
# carries an address, which the shared access-log format leaves out
globals().update(common_options(_settings, f"mailstead-public-{_listener}",
                                tls=_listener == "https"))


def post_worker_init(_worker: Any) -> None:
    """The worker logs as the engine does: JSON lines."""
    log.configure(_settings.get_str("log.level"))
