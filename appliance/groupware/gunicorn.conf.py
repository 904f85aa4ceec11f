"""gunicorn settings for mailstead-dav: `gunicorn -c appliance/groupware/gunicorn.conf.py`
(`mailstead dav serve` runs this).

The settings come from the same mailstead.toml as the engine's ($MAILSTEAD_CONFIG, else the
checkout's ./var/, else /etc/mailstead): bind `listen.dav_address`:`listen.dav_port`
(`MAILSTEAD_DAV_BIND` overrides: `--bind`). Outside dev mode only HTTPS (TLS 1.2 or newer)
with the appliance's certificate. One worker process with threads: the login guard and the
login cache live in memory, and one process keeps one count of failures.
"""

from __future__ import annotations

import os
from typing import Any

from appliance.core import log
from appliance.groupware.app import load_dav_settings
from appliance.tls.contexts import gunicorn_ssl_context

_settings = load_dav_settings()

wsgi_app = "appliance.groupware.app:create_app()"
bind = [f"{_settings.get_str('listen.dav_address')}:{_settings.get_int('listen.dav_port')}"]
if os.environ.get("MAILSTEAD_DAV_BIND"):          # tests and `mailstead dav serve --bind`
    bind = [os.environ["MAILSTEAD_DAV_BIND"]]
workers = 1
worker_class = "gthread"
threads = 8
timeout = 120                 # the worker's heartbeat; request bodies: dav.request_timeout
graceful_timeout = 10
keepalive = 15                # clients sync in bursts of requests on one connection
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
if not _settings.get_bool("server.dev_mode"):
    certfile = str(_settings.data_path("tls.cert_file"))
    keyfile = str(_settings.data_path("tls.key_file"))
ssl_context = gunicorn_ssl_context     # the engine's TLS policy: 1.2+, AEAD ciphers


# The access log names the path without its query string (%(U)s, not %(r)s), and never a
# header: Authorization is not in this format.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = "info"
proc_name = "mailstead-dav"
control_socket_disable = True  # gunicorn 24+'s ~/.gunicorn/gunicorn.ctl: shared, not needed
forwarded_allow_ips = ""      # no proxy in front: never trust X-Forwarded-* headers


def post_fork(_server: Any, _worker: Any) -> None:
    """The worker logs as the engine does: JSON lines (the login guard's events among them),
    from before it builds the app (Radicale logs while it opens the storage)."""
    log.configure(_settings.get_str("log.level"))
