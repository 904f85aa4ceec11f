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
from appliance.tls.contexts import gunicorn_ssl_context
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
if not _settings.get_bool("server.dev_mode"):
    certfile = str(_settings.data_path("tls.cert_file"))
    keyfile = str(_settings.data_path("tls.key_file"))
ssl_context = gunicorn_ssl_context     # the engine's TLS policy: 1.2+, AEAD ciphers
# The access log names the path without its query string (%(U)s, not %(r)s): a query may
# carry a token or an address that does not belong in a log file.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = "info"
proc_name = "mailstead-console"
control_socket_disable = True  # gunicorn 24+'s ~/.gunicorn/gunicorn.ctl: shared, not needed
forwarded_allow_ips = ""      # no proxy in front: never trust X-Forwarded-* headers


def post_worker_init(_worker: Any) -> None:
    """The worker logs as the engine does: JSON lines (the login guard's events among them)."""
    log.configure(_settings.get_str("log.level"))
