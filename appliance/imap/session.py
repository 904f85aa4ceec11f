"""One IMAP session's core: state, the selected mailbox, enabled extensions, and the answer to
every command (sans-IO: no sockets, TLS or event loop; store calls block, so the driver runs
`run` and `idle_poll` in a worker thread). See `plan` for the contract with the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from appliance.auth.guard import LoginResult, Outcome
from appliance.imap import plan as plans
from appliance.imap import responses as r
from appliance.imap.capabilities import capabilities
from appliance.imap.commands import any_state as a
from appliance.imap.commands.base import CommandError, ImapCommand, ParseContext
from appliance.imap.commands.dispatch import parse_command
from appliance.imap.handlers import dispatch_command, pending_updates
from appliance.imap.receiver import Command
from appliance.imap.selected import SelectedMailbox
from appliance.imap.state import State
from appliance.storage.mailbox_api import AccountMail, MailStores

_NONE_ENABLED: frozenset[str] = frozenset()     # shared: an empty set costs 216 B
# The two parse contexts (frozen), shared rather than made for every command.
_PLAIN_CONTEXT, _UTF8_CONTEXT = ParseContext(utf8=False), ParseContext(utf8=True)


@dataclass(frozen=True)
class ImapConfig:
    """What a session needs to know about the server (from the settings)."""

    hostname: str
    max_append: int                 # APPENDLIMIT: the largest message APPEND takes
    idle_poll: float = 0.5          # seconds between IDLE checks (delivery → wake < 1 s)
    dev_mode: bool = False          # LOGIN without TLS from loopback (dev only)


class ImapSession:
    """The core of one connection (see `appliance.imap.plan` for how a driver uses it)."""

    def __init__(self, stores: MailStores, config: ImapConfig, *, secure: bool,
                 client_ip: str, loopback: bool = False) -> None:
        self.stores = stores
        self.config = config
        self.secure = secure
        self.client_ip = client_ip
        self.loopback = loopback
        self.state = State.NOT_AUTHENTICATED
        self.account: AccountMail | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: frozenset[str] = _NONE_ENABLED   # ENABLEd: CONDSTORE, QRESYNC, ...
        self.condstore = False                    # turned on by ENABLE or any CONDSTORE use
        self.saved: object | None = None          # SEARCHRES `$`
        self._idle_token: object = None           # AccountMail.changed's token while idling

    # -- facts the driver needs --------------------------------------------------------------

    @property
    def parse_context(self) -> ParseContext:
        return _UTF8_CONTEXT if self.utf8 else _PLAIN_CONTEXT

    @property
    def utf8(self) -> bool:
        """Mailbox names and strings in UTF-8 (UTF8=ACCEPT or IMAP4rev2 enabled)."""
        return "UTF8=ACCEPT" in self.enabled or "IMAP4REV2" in self.enabled

    @property
    def rev2(self) -> bool:
        """The client enabled IMAP4rev2: no \\Recent, RECENT or UNSEEN for it."""
        return "IMAP4REV2" in self.enabled

    def is_recent(self, uid: int) -> bool:
        return (not self.rev2 and self.selected is not None
                and uid in self.selected.recent)

    @property
    def login_allowed(self) -> bool:
        """LOGIN/AUTHENTICATE only over TLS (LOGINDISABLED), except loopback in dev mode."""
        return self.secure or (self.config.dev_mode and self.loopback)

    def greeting(self) -> bytes:
        caps = " ".join(capabilities(self))
        return r.untagged_ok(f"[CAPABILITY {caps}] {self.config.hostname} IMAP ready")

    # -- the seam ----------------------------------------------------------------------------

    def plan(self, received: Command) -> plans.Plan:
        """Parse `received` and decide what the driver does with it (no I/O here)."""
        try:
            command = parse_command(received, self.state, self.parse_context)
        except CommandError as err:
            return plans.Reply(err.reply())
        return self.plan_parsed(command)

    def plan_parsed(self, command: ImapCommand) -> plans.Plan:
        if isinstance(command, a.Login):
            if not self.login_allowed:
                return plans.Reply(r.tagged_no(command.tag, r.LOGIN_DISABLED, "PRIVACYREQUIRED"))
            return plans.Login(command.tag, command.username, command.password)
        if isinstance(command, a.Authenticate):
            if not self.login_allowed:
                return plans.Reply(r.tagged_no(command.tag, r.LOGIN_DISABLED, "PRIVACYREQUIRED"))
            mechanism = command.mechanism.upper()
            if mechanism not in ("PLAIN", "LOGIN"):
                return plans.Reply(r.tagged_no(command.tag, r.NO_MECHANISM, "CANNOT"))
            return plans.Authenticate(command.tag, mechanism, command.initial)
        if isinstance(command, a.StartTls):
            if self.secure:
                return plans.Reply(r.tagged_bad(command.tag, r.TLS_ALREADY))
            return plans.StartTls(command.tag, r.tagged_ok(command.tag, r.TLS_GO))
        if isinstance(command, a.Idle):
            return plans.Idle(command.tag, r.continuation(r.IDLING), self.config.idle_poll)
        if isinstance(command, a.Logout):
            self.state = State.LOGOUT
            return plans.Logout(r.untagged_bye(r.LOGGING_OUT)
                                + r.tagged_ok(command.tag, r.LOGOUT_OK))
        return plans.Run(command)

    def run(self, command: ImapCommand) -> Iterator[bytes]:
        """Answer a `Run` command (blocking store I/O): untagged data, then the tagged reply."""
        return dispatch_command(self, command)

    # -- login -------------------------------------------------------------------------------

    def logged_in(self, tag: str, address: str) -> bytes:
        """The guard accepted `address`: open its mail (blocking: call in a thread)."""
        self.account = self.stores.open(address)
        self.state = State.AUTHENTICATED
        caps = " ".join(capabilities(self))
        return r.tagged_ok(tag, f"[CAPABILITY {caps}] {r.LOGGED_IN}")

    def login_failed(self, tag: str, result: LoginResult) -> bytes:
        if result.outcome is Outcome.UNAVAILABLE:
            return r.tagged_no(tag, r.AUTH_UNAVAILABLE, "UNAVAILABLE")
        return r.tagged_no(tag, r.AUTH_FAILED, "AUTHENTICATIONFAILED")

    def tls_started(self) -> None:
        self.secure = True

    # -- IDLE --------------------------------------------------------------------------------

    def idle_poll(self) -> bytes:
        """Untagged updates for what changed since the last look (blocking: in a thread).

        Asks the store's cheap `changed` first: an idle client costs a few stats per poll,
        not a sync of its folder."""
        if self.selected is None or self.account is None:
            return b""
        changed, self._idle_token = self.account.changed(self.selected.name, self._idle_token)
        if not changed:
            return b""
        return b"".join(pending_updates(self, allow_expunge=True))

    def idle_done(self, tag: str, bad: bool = False) -> bytes:
        if bad:
            return r.tagged_bad(tag, r.IDLE_BAD)
        return r.tagged_ok(tag, r.IDLE_DONE)

    def close(self) -> None:
        """The connection ended (any state)."""
        self.selected = None
        self.account = None
