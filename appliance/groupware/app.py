"""The mailstead-dav WSGI application: Radicale configured from our Settings (never from a
Radicale config file), our auth and rights plugins, and our middleware in front.

gunicorn calls `appliance.groupware.app:create_app()` (gunicorn.conf.py); tests pass their
own Settings. Nothing is read or opened at import time.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radicale import config as radicale_config
from radicale.app import Application

from appliance.auth.guard import LoginGuard, PasswordVerifier
from appliance.core import log
from appliance.groupware.auth import Auth, GuardLoop, LoginCache
from appliance.groupware.middleware import DavMiddleware, Limits, RateLimiter
from appliance.groupware.provision import provision_account
from appliance.groupware.rights import Rights
from appliance.groupware.storage import ensure_folder, open_storage
from appliance.settings import Settings
from appliance.smtp.submission_server import build_login_guard

RADICALE_LOGGER = "radicale"


def radicale_configuration(settings: Settings, extra: dict[str, dict[str, Any]] | None = None
                           ) -> radicale_config.Configuration:
    """Radicale's configuration from ours; `extra` adds plugin callables."""
    folder = ensure_folder(settings.data_dir)
    configuration = radicale_config.load()       # Radicale's defaults only: no file read
    values: dict[str, dict[str, Any]] = {
        "server": {"max_content_length": str(settings.get_int("dav.max_content_length")),
                   # Radicale caps a resource at 80 % of a body (the rest is XML around it)
                   "max_resource_size": str(settings.get_int("dav.max_content_length") * 4 // 5),
                   "timeout": str(settings.get_int("dav.request_timeout")),
                   # the username is an address: "@" once, and no path separators
                   "validate_user_value": "minimal"},
        "storage": {"type": "multifilesystem", "filesystem_folder": str(folder),
                    "folder_umask": "0077"},
        "web": {"type": "none"},                 # no Radicale web UI: the console is ours
        "rights": {"permit_delete_collection": "True"},
        "sharing": {"type": "none"},
        "hook": {"type": "none"},
        # the guard delays failures and caches nothing; Radicale must not add its own
        "auth": {"delay": "0", "cache_logins": "False"},
        "logging": {"mask_passwords": "True"},
    }
    for section, options in (extra or {}).items():
        values.setdefault(section, {}).update(options)
    configuration.update(values, "mailstead settings")
    return configuration


def _provisioner(data_dir: Path) -> Callable[[str], None]:
    storage = open_storage(data_dir)

    def provision(account: str) -> None:
        try:
            created = provision_account(storage, account)
        except (OSError, ValueError, RuntimeError) as exc:
            log.error("dav.provision_failed", exc, account=account)
            return
        if created:
            log.event("dav.provisioned", account=account, collections=created)
    return provision


def load_dav_settings() -> Settings:
    """The settings the way the CLI finds them ($MAILSTEAD_CONFIG, ./var/, /etc), with
    mailstead.db's values laid over them."""
    from appliance.cli import context  # the CLI imports this package's commands

    return context.effective(argparse.Namespace(config=None)).settings


def create_app(settings: Settings | None = None,
               verifier: PasswordVerifier | None = None) -> DavMiddleware:
    """The WSGI application. Without `settings`, they are found the way the CLI finds them
    (with mailstead.db's values); `verifier` replaces the directory's (tests count calls).
    """
    if settings is None:
        settings = load_dav_settings()
    guard = GuardLoop(LoginGuard.from_settings(settings, verifier) if verifier is not None
                      else build_login_guard(settings))
    cache = LoginCache(settings.get_int("dav.auth_cache_seconds"),
                       settings.get_int("dav.auth_cache_entries"))
    provision = _provisioner(settings.data_dir)
    configuration = radicale_configuration(settings, {
        "auth": {"type": lambda conf: Auth(conf, guard, cache, provision)},
        "rights": {"type": Rights}})
    # Radicale logs through logging: warnings and worse reach our JSON lines; its INFO
    # lines name every request (gunicorn's access log does that without query strings).
    logging.getLogger(RADICALE_LOGGER).setLevel(logging.WARNING)
    limits = Limits(max_body=settings.get_int("dav.max_content_length"),
                    request_timeout=settings.get_int("dav.request_timeout"),
                    requests_per_minute=settings.get_int("dav.requests_per_minute"))
    return DavMiddleware(Application(configuration), limits,
                         RateLimiter(limits.requests_per_minute))
