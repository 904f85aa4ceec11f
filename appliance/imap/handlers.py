"""Running one parsed command: the command table, store errors turned into NO replies, and the
untagged updates every command ends with (RFC 9051 7: EXISTS, EXPUNGE, FETCH FLAGS).

The handlers themselves live by command group in `mailbox_handlers` (any and authenticated
state) and `message_handlers` (selected state); each is a generator of response chunks that
ends with the tagged reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from appliance.core import log
from appliance.imap import mailbox_handlers as mh
from appliance.imap import message_handlers as sh
from appliance.imap import responses as r
from appliance.imap.commands import any_state as a
from appliance.imap.commands import mailboxes as m
from appliance.imap.commands import messages as s
from appliance.imap.commands.base import CommandError, ImapCommand
from appliance.imap.formats import render_flags
from appliance.imap.selected import Exists, Expunge, FlagsChanged, Recent, Update, Vanished
from appliance.imap.sequence_set import NumberSet
from appliance.storage.mailbox_api import MailboxError, NoSuchFolderError

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

Handler = Callable[[Any, Any], Iterator[bytes]]

HANDLERS: dict[type, Handler] = {
    a.Capability: mh.capability, a.Noop: mh.noop, a.Enable: mh.enable, a.Id: mh.identify,
    m.Select: mh.select, m.Create: mh.create, m.Delete: mh.delete, m.Rename: mh.rename,
    m.Subscribe: mh.subscribe, m.ListMailboxes: mh.list_mailboxes, m.Namespace: mh.namespace,
    m.Status: mh.status, m.Append: mh.append, m.GetQuota: mh.get_quota,
    m.GetQuotaRoot: mh.get_quota_root, m.SetQuota: mh.set_quota,
    s.Check: mh.noop, s.Close: sh.close, s.Unselect: sh.unselect, s.Expunge: sh.expunge,
    s.Search: sh.search, s.Fetch: sh.fetch, s.Store: sh.store, s.Copy: sh.copy,
}

_ERROR_TEXTS = {"ALREADYEXISTS": r.MAILBOX_EXISTS, "NONEXISTENT": r.NO_SUCH_MAILBOX,
                "OVERQUOTA": r.OVER_QUOTA, "INUSE": r.IN_USE}

# RFC 9051 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH (their UID forms may).
_NO_EXPUNGE = (s.Fetch, s.Store, s.Search)


def dispatch_command(session: ImapSession, command: ImapCommand) -> Iterator[bytes]:
    """The whole answer to `command`: its data, pending updates, the tagged reply."""
    handler = HANDLERS.get(type(command))
    if handler is None:
        yield r.tagged_bad(command.tag, "Command not supported")
        return
    # A handler's last chunk is its tagged reply: each chunk is held back until the next
    # one comes, and the last one is held until the updates are out. Only the last is
    # looked at, so a chunk that is a message's text (FETCH) may start with anything.
    tagged, held = b"", None
    try:
        for chunk in handler(session, command):
            if held is not None:
                yield held
            held = chunk
    except CommandError as err:         # found out while running, e.g. a bad seq-number
        tagged = CommandError(command.tag, err.text, err.status, err.code).reply()
    except NoSuchFolderError as err:
        code = "TRYCREATE" if isinstance(command, (m.Append, s.Copy)) else err.code
        tagged = r.tagged_no(command.tag, r.TRY_CREATE if code == "TRYCREATE"
                             else r.NO_SUCH_MAILBOX, code)
    except MailboxError as err:
        tagged = r.tagged_no(command.tag, _ERROR_TEXTS.get(err.code) or str(err) or r.CANNOT,
                             err.code)
    except Exception as exc:     # a bug answers NO and the session goes on
        log.error("imap.command_failed", exc, command=type(command).__name__)
        tagged = r.tagged_no(command.tag, r.SERVER_BUG, "SERVERBUG")
    if held is not None:
        if not tagged and held.startswith(command.tag.encode() + b" "):
            tagged = held
        else:
            yield held
    uid_form = getattr(command, "uid", False)
    allow = uid_form or not isinstance(command, _NO_EXPUNGE)
    if session.selected is not None and session.account is not None:
        # A folder that went away meanwhile: the next command finds out.
        try:  # noqa: SIM105 -- contextlib.suppress costs three calls on every command
            yield from pending_updates(session, allow_expunge=allow)
        except MailboxError:
            pass
    yield tagged


def pending_updates(session: ImapSession, allow_expunge: bool) -> Iterator[bytes]:
    """Untagged updates for changes others made to the selected folder."""
    selected, account = session.selected, session.account
    if selected is None or account is None:
        return
    snapshot = account.sync(selected.name, claim_recent=not selected.readonly)
    updates = selected.refresh(snapshot, allow_expunge=allow_expunge,
                               qresync="QRESYNC" in session.enabled,
                               condstore=session.condstore)
    for update in updates:
        yield render_update(session, update)


def render_update(session: ImapSession, update: Update) -> bytes:
    if isinstance(update, Expunge):
        return f"* {update.seq} EXPUNGE\r\n".encode()
    if isinstance(update, Vanished):
        return f"* VANISHED {NumberSet.from_values(update.uids)}\r\n".encode()
    if isinstance(update, Exists):
        return f"* {update.count} EXISTS\r\n".encode()
    if isinstance(update, Recent):
        return b"" if session.rev2 else f"* {update.count} RECENT\r\n".encode()
    assert isinstance(update, FlagsChanged)
    meta = update.message
    modseq = f" MODSEQ ({meta.modseq})" if session.condstore else ""
    flags = render_flags(meta.flags, session.is_recent(meta.uid))
    return f"* {update.seq} FETCH (UID {meta.uid} FLAGS ({flags}){modseq})\r\n".encode()
