"""Which commands the IMAP driver runs on the event loop instead of in a worker thread, and the
bounds that keep the loop responsive while it does.

A trip to the worker thread and back (submit, a thread wake-up, the loop's self-pipe wake-up)
costs more than NOOP, a FLAGS resync or one whole message takes to answer, and a client such
as mbsync pipelines one `UID FETCH n (BODY.PEEK[])` per message. So the driver answers these
on the loop when it is safe to:

- the command reads only what the store already holds, changes nothing and parses no
  message (`eligible`): NOOP, CHECK, CAPABILITY, and FETCH of index items (FLAGS, UID,
  RFC822.SIZE, INTERNALDATE, MODSEQ) or of whole messages (BODY.PEEK[], or BODY[] in a
  read-only folder), without VANISHED;
- the account's store lock is free right now, and is taken without waiting (`StoreLock`)
  for the check below and the command's output made on the loop after it, up to the
  budget: every store call takes it, and the loop must never wait for it (a STORE's
  deferred flag renames, a POP3 session, the junk trainer hold it in their own threads);
  before trying, no other IMAP command of the account may be in a worker thread
  (`ThreadJobs`), which would most likely hold it;
- the folder has not changed since the token taken before the last command that ran in a
  thread (`AccountMail.changed`, the check IDLE uses): the sync that every command ends with
  then takes the store's no-change path, reusing that check (same hold of the lock) instead
  of two more stats and a pragma, and no reconciliation.

The bounds: a command runs on the loop for at most `INLINE_BUDGET` seconds, checked between
the chunks of its output (the FETCH generators yield every ~64 KiB of message text or 1,024
index lines, well under a millisecond of work each); what is left then goes on in a worker
thread. Back-to-back inline commands of one client (pipelining) give the loop to the other
connections after `INLINE_SLICE` seconds. So another connection, an IDLE wake-up or a new
login waits at most about `INLINE_SLICE` plus one chunk per busy connection ahead of it.

A message file that is not in the page cache costs a disk read on the loop: whole-message
FETCH is bounded by the budget check between its ~64 KiB chunks.

`StoreLock` takes the store's lock through `AccountMail.try_lock` / `unlock`, which never
wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.imap.commands import any_state as a
from appliance.imap.commands import messages as s
from appliance.imap.commands.base import ImapCommand
from appliance.imap.fetch_response import needs_content, whole_message_names
from appliance.storage.mailbox_api import AccountMail, MailboxError

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

INLINE_BUDGET = 0.005       # seconds of one command's work on the loop, then a worker thread
INLINE_SLICE = 0.005        # seconds of back-to-back inline commands before others' turn

Token = tuple[str, object]  # (folder, AccountMail.changed token)

_SIMPLE = (a.Noop, a.Capability, s.Check)


def eligible(session: ImapSession, command: ImapCommand) -> bool:
    """Whether `command` only reads what the store holds, changes nothing, parses no message."""
    if isinstance(command, _SIMPLE):
        return True
    if not isinstance(command, s.Fetch) or session.selected is None:
        return False
    if command.modifiers.vanished:                  # asks the index for expunged UIDs
        return False
    attributes = command.attributes
    if not session.selected.readonly and any(x.sets_seen for x in attributes):
        return False                                # a STORE of \Seen: a durable write
    return not needs_content(attributes) or whole_message_names(attributes) is not None


def token_now(session: ImapSession) -> Token | None:
    """The selected folder's change token, taken before a command runs in a worker thread
    (blocking: call it there). None when nothing is selected or the folder is gone."""
    selected, account = session.selected, session.account
    if selected is None or account is None:
        return None
    try:
        return selected.name, account.changed(selected.name, None)[1]
    except MailboxError:
        return None


def unchanged(session: ImapSession, token: Token | None) -> bool:
    """Whether the selected folder is as it was at `token` (on the loop: call only while
    holding `StoreLock`). True with nothing selected: the command then makes no store call
    at all."""
    selected, account = session.selected, session.account
    if selected is None or account is None:
        return True
    if token is None or token[0] != selected.name:
        return False
    try:
        changed, _new = account.changed(selected.name, token[1])
    except Exception:           # gone, closed: the worker thread finds out and answers
        return False
    return not changed


class ThreadJobs:
    """IMAP work of each account now in a worker thread (shared by all connections of both
    listeners, all on one event loop): while one runs, it may hold the account's lock."""

    def __init__(self) -> None:
        self._running: dict[str, int] = {}
        self.total = 0                  # jobs started so far (for tests and status)
        self.direct = 0                 # commands begun in the protocol callback (same)
        self.fast = 0                   # of those, answered by `fast_lane` (same)

    def started(self, account: str) -> None:
        self._running[account] = self._running.get(account, 0) + 1
        self.total += 1

    def finished(self, account: str) -> None:
        left = self._running.get(account, 0) - 1
        if left > 0:
            self._running[account] = left
        else:
            self._running.pop(account, None)

    def idle(self, account: str | None) -> bool:
        return account is None or account not in self._running


class StoreLock:
    """An account's store lock, taken only when it is free: the event loop never waits."""

    def __init__(self, account: AccountMail | None) -> None:
        self._account = account

    def take(self) -> bool:
        """Hold the lock if nobody else does (True), else False at once. With no account
        (not logged in) there is nothing to hold: True."""
        return self._account is None or self._account.try_lock()

    def give(self) -> None:
        if self._account is not None:
            self._account.unlock()
