"""What the IMAP listeners' connections are started with, taken from the `imap.*` settings:
the receiver's limits before and after login, the core's config, the connection and account
counts shared by both ports."""

from __future__ import annotations

import ssl
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

from appliance.auth.guard import LoginGuard
from appliance.imap.receiver import ReceiverLimits
from appliance.imap.server_inline import ThreadJobs
from appliance.imap.session import ImapConfig
from appliance.settings import Settings
from appliance.smtp.connections import ConnectionTracker
from appliance.storage.mailbox_api import MailStores

PRE_AUTH_MAX_LITERAL = 8192  # largest literal before login (LOGIN's user name and password)


@dataclass(frozen=True)
class ImapListenerConfig:
    """What every connection of the two listeners is started with."""

    stores: MailStores
    guard: LoginGuard
    executor: Executor
    tracker: ConnectionTracker
    accounts: AccountCounter
    tls: ssl.SSLContext
    session: ImapConfig
    limits: ReceiverLimits            # after login
    pre_auth_limits: ReceiverLimits   # before: no client uploads a message unauthenticated
    login_timeout: float
    autologout: float
    max_bad_commands: int
    # IMAP work per account now in a worker thread: commands run on the loop only while
    # none runs for their account (`server_inline`).
    thread_jobs: ThreadJobs = field(default_factory=ThreadJobs)
    # NOOP and FETCH of one whole message answered by `fast_lane` when it can (off only in
    # the tests that compare it with the general path).
    fast_lane: bool = True


class AccountCounter:
    """Live logged-in connections per account, refused above `max_per_account`."""

    def __init__(self, max_per_account: int) -> None:
        self._max = max_per_account
        self._live: dict[str, int] = {}

    def acquire(self, account: str) -> bool:
        if self._live.get(account, 0) >= self._max:
            return False
        self._live[account] = self._live.get(account, 0) + 1
        return True

    def release(self, account: str) -> None:
        left = self._live.get(account, 0) - 1
        if left > 0:
            self._live[account] = left
        else:
            self._live.pop(account, None)


def session_config(settings: Settings) -> ImapConfig:
    return ImapConfig(hostname=settings.get_str("server.hostname"),
                      max_append=max_append(settings),
                      dev_mode=settings.get_bool("server.dev_mode"))


def max_append(settings: Settings) -> int:
    """`imap.max_append`, where 0 means `limits.max_message_size`."""
    return settings.get_int("imap.max_append") or settings.get_int("limits.max_message_size")


def receiver_limits(settings: Settings) -> ReceiverLimits:
    line = settings.get_int("imap.max_line_length")
    largest = max_append(settings)
    # LITERAL+ is advertised (capabilities.py), so non-synchronising literals of any size up
    # to the APPEND limit are taken (RFC 7888 4): max_non_sync_literal=None.
    return ReceiverLimits(max_line=line, max_literal=largest, max_command=largest + line,
                          max_non_sync_literal=None)


def listener_config(settings: Settings, executor: Executor, guard: LoginGuard,
                    stores: MailStores, tls: ssl.SSLContext) -> ImapListenerConfig:
    """What both listeners' connections share (one tracker and account count for the two)."""
    tracker = ConnectionTracker(settings.get_int("imap.max_connections"),
                                settings.get_int("imap.max_connections_per_ip"))
    return ImapListenerConfig(
        stores, guard, executor, tracker,
        AccountCounter(settings.get_int("imap.max_connections_per_account")), tls,
        session_config(settings), receiver_limits(settings), pre_auth_limits(settings),
        settings.get_int("imap.login_timeout"), settings.get_int("imap.autologout"),
        settings.get_int("imap.max_bad_commands"))


def pre_auth_limits(settings: Settings) -> ReceiverLimits:
    """Before login only LOGIN takes literals (a user name and a password): a client that
    has not authenticated must not make the server spool megabytes to disk."""
    line = settings.get_int("imap.max_line_length")
    return replace(receiver_limits(settings), max_literal=PRE_AUTH_MAX_LITERAL,
                   max_command=line + 2 * PRE_AUTH_MAX_LITERAL)
