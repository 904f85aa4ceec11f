"""gunicorn settings for mailstead-console: `gunicorn -c webui/gunicorn.conf.py`.

The settings come from the same mailstead.toml as the engine's ($MAILSTEAD_CONFIG, else the
checkout's ./var/, else /etc/mailstead): bind address `listen.console_address` (LAN or
loopback; default 127.0.0.1) and port `listen.console_port`. Outside dev mode the console
speaks only HTTPS, with the appliance's certificate (`tls.cert_file`, `tls.key_file`).
One worker process with threads: the login guard counts failures in memory, and one
process keeps one count (several would each allow the full number of guesses).
"""

from __future__ import annotations

import os
from typing import Any

from appliance.core import log
from appliance.core.gunicorn_common import common_options
from webui.services import load_console_settings, option_from

_settings = load_console_settings()

wsgi_app = "webui:create_app()"
bind = [f"{option_from(_settings, 'listen.console_address')}:"
        f"{_settings.get_int('listen.console_port')}"]
if os.environ.get("MAILSTEAD_CONSOLE_BIND"):        # tests and `mailstead console --bind`
    bind = [os.environ["MAILSTEAD_CONSOLE_BIND"]]
workers = 1
worker_class = "gthread"
threads = 8
timeout = 60                  # a request (argon2, a DNS check) that hangs longer is killed
graceful_timeout = 10
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
globals().update(common_options(_settings, "mailstead-console",
                                tls=not _settings.get_bool("server.dev_mode")))


def post_worker_init(_worker: Any) -> None:
    """The worker logs as the engine does: JSON lines (the login guard's events among them)."""
    log.configure(_settings.get_str("log.level"))
