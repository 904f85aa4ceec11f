"""The submission listeners: `listen.submission_port` (587: STARTTLS, then AUTH) and
`listen.submissions_port` (465: implicit TLS, RFC 8314 3.3), sharing one handler and guard.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from concurrent.futures import Executor

from appliance.auth.guard import LoginGuard
from appliance.auth.passwords import Passwords
from appliance.auth.verify import ThreadLocalVerifier
from appliance.checks.pipeline import build_checks
from appliance.core import log
from appliance.core.ratelimit import SlidingWindowLimiter
from appliance.outbound.service import build_deliverer, space_guard
from appliance.pipeline.vacation import attach_vacation
from appliance.settings import Settings
from appliance.smtp.connections import ConnectionTracker, Listener
from appliance.smtp.session import MailsteadSMTP
from appliance.smtp.submission import SubmissionHandler
from appliance.storage.app_passwords import AppPasswordStore
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

# A connection counts against the connection limits only once its handshake is done (that
# is when the session starts): a silent client must not hold a socket for asyncio's 60 s.
TLS_HANDSHAKE_TIMEOUT = 20.0


def build_login_guard(settings: Settings) -> LoginGuard:
    """The process's login guard, verifying against mailstead.db (a connection per thread)."""
    data_dir = settings.data_dir
    passwords = Passwords.from_settings(settings)
    # Mail logins also accept the account's app passwords (appliance.auth.verify).
    verifier = ThreadLocalVerifier(
        lambda: SqliteDirectory(open_database(data_dir)), passwords,
        open_app_passwords=lambda: AppPasswordStore(open_database(data_dir), passwords))
    return LoginGuard.from_settings(settings, verifier)


def build_handler(settings: Settings, executor: Executor, guard: LoginGuard) -> SubmissionHandler:
    directory = SqliteDirectory(open_database(settings.data_dir))
    # Local recipients of a colleague's message get their vacation replies sent too.
    deliverer = attach_vacation(settings, build_deliverer(settings, executor), executor,
                                directory)
    return SubmissionHandler(
        directory, deliverer,
        guard, SlidingWindowLimiter(settings.get_int("submission.rate_limit_messages"),
                                    settings.get_int("submission.rate_limit_window")),
        hostname=settings.get_str("server.hostname"),
        max_recipients=settings.get_int("limits.max_recipients"), space=space_guard(settings),
        checks=build_checks(settings, inbound=False))


async def start_submission(settings: Settings, executor: Executor, guard: LoginGuard,
                           tls: ssl.SSLContext) -> list[Listener]:
    """Bind both submission listeners."""
    handler = build_handler(settings, executor, guard)
    listeners = []
    for name, port_setting, implicit in (("submission", "listen.submission_port", False),
                                         ("submissions", "listen.submissions_port", True)):
        tracker = ConnectionTracker(settings.get_int("limits.max_connections"),
                                    settings.get_int("limits.max_connections_per_ip"))
        factory = _factory(settings, handler, tracker, tls, implicit)
        address, port = settings.get_str("listen.address"), settings.get_int(port_setting)
        server = await asyncio.get_running_loop().create_server(
            factory, host=address, port=port, reuse_address=True, backlog=512,
            ssl=tls if implicit else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit else None)
        log.event("listener.started", listener=name, address=address, port=port)
        listeners.append(Listener(name, server, tracker))
    return listeners


def _factory(settings: Settings, handler: SubmissionHandler, tracker: ConnectionTracker,
             tls: ssl.SSLContext, implicit: bool) -> Callable[[], MailsteadSMTP]:
    hostname = settings.get_str("server.hostname")

    def factory() -> MailsteadSMTP:
        return MailsteadSMTP(
            handler, tracker=tracker, auth_enabled=True, implicit_tls=implicit,
            line_length_limit=settings.get_int("limits.max_line_length"),
            data_timeout=settings.get_int("limits.data_timeout"),
            data_size_limit=settings.get_int("limits.max_message_size"),
            timeout=settings.get_int("limits.idle_timeout"),
            enable_SMTPUTF8=True, hostname=hostname, tls_context=None if implicit else tls)

    return factory
