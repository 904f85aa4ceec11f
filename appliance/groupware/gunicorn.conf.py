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
from appliance.core.gunicorn_common import common_options
from appliance.groupware.app import load_dav_settings

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
globals().update(common_options(_settings, "mailstead-dav",
                                tls=not _settings.get_bool("server.dev_mode")))


def post_fork(_server: Any, _worker: Any) -> None:
    """The worker logs as the engine does: JSON lines (the login guard's events among them),
    from before it builds the app (Radicale logs while it opens the storage)."""
    log.configure(_settings.get_str("log.level"))
