"""The IMAP core driven the way the asyncio server drives it, without sockets: for
transcript and fuzz tests of `ImapSession` against the real store.

A LOGIN with `PASSWORD` is accepted as the login guard would accept it; anything else is
refused (unless `any_password`: every LOGIN is accepted as `ADDRESS`). AUTHENTICATE,
STARTTLS and IDLE are the server's business and are not driven here.
"""

from __future__ import annotations

from appliance.auth.guard import LoginResult, Outcome
from appliance.imap import plan as plans
from appliance.imap.commands.base import CommandError
from appliance.imap.receiver import (
    NEED_DATA,
    Command,
    ContinuationRequest,
    Receiver,
    ReceiverError,
)
from appliance.imap.session import ImapConfig, ImapSession
from appliance.storage.maildir.stores import MaildirStores

ADDRESS = "alice@example.test"
PASSWORD = "correct horse battery"       # what EngineProcess.add_account sets
CONTINUE_LITERAL = b"+ Ready for literal\r\n"


class CoreWire:
    """The session driven as the server drives it, its output kept as lines."""

    def __init__(self, stores: MaildirStores, *, secure: bool = True,
                 config: ImapConfig | None = None, client_ip: str = "127.0.0.1",
                 any_password: bool = False) -> None:
        self.session = ImapSession(
            stores, config or ImapConfig("mx.mailstead.test", 50 * 1024 * 1024),
            secure=secure, client_ip=client_ip)
        self.receiver = Receiver()
        self.any_password = any_password        # accept every LOGIN as ADDRESS
        self.output = bytearray(self.session.greeting())

    def send(self, data: bytes) -> None:
        self.receiver.feed(data)
        while (event := self.receiver.next_event()) is not NEED_DATA:
            if isinstance(event, ContinuationRequest):
                self.output += CONTINUE_LITERAL
            elif isinstance(event, Command):
                self._run(self.session.plan(event))
            elif isinstance(event, ReceiverError):
                self.output += CommandError(event.tag, event.text, event.status,
                                            event.code).reply()

    def _run(self, plan: plans.Plan) -> None:
        if isinstance(plan, plans.Run):
            for chunk in self.session.run(plan.command):
                self.output += chunk
        elif isinstance(plan, plans.Login):
            if self.any_password or (plan.username == ADDRESS and plan.password == PASSWORD):
                self.output += self.session.logged_in(plan.tag, ADDRESS)
            else:
                self.output += self.session.login_failed(plan.tag,
                                                         LoginResult(Outcome.REJECTED))
        elif isinstance(plan, plans.Reply):
            self.output += plan.data
        elif isinstance(plan, (plans.Logout, plans.Idle, plans.StartTls)):
            self.output += plan.reply
        else:
            raise AssertionError(f"the core transcripts do not cover {plan}")

    def read_line(self) -> bytes:
        end = self.output.find(b"\r\n")
        assert end >= 0, f"no more output; left: {bytes(self.output)!r}"
        line = bytes(self.output[:end])
        del self.output[:end + 2]
        return line
