"""Commands of the any and authenticated states (RFC 9051 6.1, 6.3): CAPABILITY, NOOP, ENABLE,
ID, SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB, NAMESPACE, STATUS,
APPEND and the QUOTA commands (RFC 9208). Each is a generator of response chunks ending with
the tagged reply; store errors propagate to `handlers.dispatch_command`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from appliance.imap import responses as r
from appliance.imap import wire
from appliance.imap.capabilities import capabilities
from appliance.imap.commands import any_state as a
from appliance.imap.commands import mailboxes as m
from appliance.imap.formats import mailbox_name, render_flags
from appliance.imap.selected import SelectedMailbox
from appliance.imap.sequence_set import NumberSet
from appliance.imap.state import State
from appliance.storage.mailbox_api import (
    DELIMITER,
    INBOX,
    AccountMail,
    FolderExistsError,
    FolderInfo,
    FolderStatus,
    InvalidFolderNameError,
    NoSuchFolderError,
    SpecialUse,
)

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

ENABLEABLE = ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2")
SERVER_ID = (("name", "Mailstead"), ("vendor", "Mailstead"), ("version", "0.1.0"))
PERMANENT = "\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*"


def _account(session: ImapSession) -> AccountMail:
    assert session.account is not None, "the state table allows this only when logged in"
    return session.account


# -- any state -------------------------------------------------------------------------------

def capability(session: ImapSession, command: a.Capability) -> Iterator[bytes]:
    yield r.untagged("CAPABILITY " + " ".join(capabilities(session)))
    yield r.tagged_ok(command.tag, "CAPABILITY " + r.DONE)


def noop(session: ImapSession, command: a.Noop) -> Iterator[bytes]:
    """NOOP and CHECK: nothing to do but the updates every command ends with."""
    yield r.tagged_ok(command.tag, f"{type(command).__name__.upper()} {r.DONE}")


def identify(session: ImapSession, command: a.Id) -> Iterator[bytes]:
    pairs: list[wire.Value] = [item for pair in SERVER_ID for item in pair]
    yield b"* ID " + wire.render(pairs) + b"\r\n"
    yield r.tagged_ok(command.tag, "ID " + r.DONE)


def enable(session: ImapSession, command: a.Enable) -> Iterator[bytes]:
    """RFC 5161: list what was newly enabled; QRESYNC implies CONDSTORE (RFC 7162 3.2.3)."""
    newly: list[str] = []
    for name in command.capabilities:
        upper = name.upper()
        if upper in ENABLEABLE and upper not in session.enabled:
            session.enabled = session.enabled | {upper}
            newly.append(name)
            if upper in ("CONDSTORE", "QRESYNC"):
                session.condstore = True
    if "QRESYNC" in session.enabled:
        session.enabled = session.enabled | {"CONDSTORE"}
    yield r.untagged("ENABLED" + "".join(f" {name}" for name in newly))
    yield r.tagged_ok(command.tag, "ENABLE " + r.DONE)


# -- selecting -------------------------------------------------------------------------------

def select(session: ImapSession, command: m.Select) -> Iterator[bytes]:
    account = _account(session)
    if session.selected is not None:
        session.selected = None
        session.state = State.AUTHENTICATED
        yield r.untagged_ok("Previous mailbox closed", "CLOSED")    # RFC 9051 7.1, 7162
    if command.condstore or command.qresync is not None:
        session.condstore = True
    snapshot = account.sync(command.mailbox, claim_recent=not command.readonly)
    view = SelectedMailbox(snapshot, readonly=command.readonly)
    keywords = sorted({f for meta in view.messages for f in meta.flags
                       if not f.startswith("\\")})
    flags = render_flags(frozenset(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                    "\\Draft", *keywords)))
    yield f"* FLAGS ({flags})\r\n".encode()
    permanent = "" if command.readonly else PERMANENT
    yield r.untagged_ok("Flags permitted", f"PERMANENTFLAGS ({permanent})")
    yield f"* {view.exists} EXISTS\r\n".encode()
    if not session.rev2:
        yield f"* {len(view.recent)} RECENT\r\n".encode()
        first_unseen = next((i + 1 for i, meta in enumerate(view.messages)
                             if "\\Seen" not in meta.flags), None)
        if first_unseen is not None:
            yield r.untagged_ok("First unseen", f"UNSEEN {first_unseen}")
    yield r.untagged_ok("UIDs valid", f"UIDVALIDITY {view.uidvalidity}")
    yield r.untagged_ok("Predicted next UID", f"UIDNEXT {view.uidnext}")
    if session.condstore:
        yield r.untagged_ok("Highest", f"HIGHESTMODSEQ {view.highest_modseq}")
    if session.rev2:
        yield (b"* LIST () \"/\" " + mailbox_name(snapshot.name, session.utf8) + b"\r\n")
    if command.qresync is not None and "QRESYNC" in session.enabled:
        yield from _qresync(session, view, command.qresync)
    session.selected = view
    session.state = State.SELECTED
    yield r.tagged_ok(command.tag, r.SELECTED_RO if command.readonly else r.SELECTED_RW)


def _qresync(session: ImapSession, view: SelectedMailbox, params: m.QResync) -> Iterator[bytes]:
    """RFC 7162 3.2.5.2: what changed since the client's modseq, if its UIDVALIDITY holds."""
    if params.uidvalidity != view.uidvalidity:
        return
    known = params.known_uids.resolve(view.uidnext) if params.known_uids else None
    vanished = [uid for uid in _account(session).expunged_since(view.name, params.modseq)
                if known is None or uid in known]
    if vanished:
        yield f"* VANISHED (EARLIER) {NumberSet.from_values(vanished)}\r\n".encode()
    for seq, meta in enumerate(view.messages, start=1):
        if meta.modseq > params.modseq and (known is None or meta.uid in known):
            flags = render_flags(meta.flags, session.is_recent(meta.uid))
            yield (f"* {seq} FETCH (UID {meta.uid} FLAGS ({flags}) "
                   f"MODSEQ ({meta.modseq}))\r\n").encode()


# -- mailboxes -------------------------------------------------------------------------------

_USES = {use.value.upper(): use for use in SpecialUse}


def create(session: ImapSession, command: m.Create) -> Iterator[bytes]:
    name = command.mailbox.rstrip(DELIMITER)
    if name.upper() == INBOX:
        raise FolderExistsError(r.MAILBOX_EXISTS)
    uses = [_USES.get(use.upper()) for use in command.special_use]
    if any(use is None for use in uses) or len(uses) > 1:
        yield r.tagged_no(command.tag, "Unsupported special-use attribute", "USEATTR")
        return
    _account(session).create_folder(name, uses[0] if uses else None)
    yield r.tagged_ok(command.tag, "CREATE " + r.DONE)


def delete(session: ImapSession, command: m.Delete) -> Iterator[bytes]:
    if command.mailbox.upper() == INBOX:
        raise InvalidFolderNameError("INBOX cannot be deleted")
    _account(session).delete_folder(command.mailbox)
    if session.selected is not None and session.selected.name == command.mailbox:
        session.selected = None
        session.state = State.AUTHENTICATED
    yield r.tagged_ok(command.tag, "DELETE " + r.DONE)


def rename(session: ImapSession, command: m.Rename) -> Iterator[bytes]:
    _account(session).rename_folder(command.old, command.new.rstrip(DELIMITER))
    yield r.tagged_ok(command.tag, "RENAME " + r.DONE)


def subscribe(session: ImapSession, command: m.Subscribe) -> Iterator[bytes]:
    _account(session).set_subscribed(command.mailbox, command.subscribe)
    verb = "SUBSCRIBE" if command.subscribe else "UNSUBSCRIBE"
    yield r.tagged_ok(command.tag, f"{verb} {r.DONE}")


def namespace(session: ImapSession, command: m.Namespace) -> Iterator[bytes]:
    yield b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    yield r.tagged_ok(command.tag, "NAMESPACE " + r.DONE)


def list_mailboxes(session: ImapSession, command: m.ListMailboxes) -> Iterator[bytes]:
    """LIST and LSUB with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154), CHILDREN and
    LIST-STATUS (RFC 5819)."""
    verb = "LSUB" if command.lsub else "LIST"
    if command.patterns == ("",):      # the hierarchy delimiter and root (RFC 9051 6.3.9)
        yield f'* {verb} (\\Noselect) "/" ""\r\n'.encode()
        yield r.tagged_ok(command.tag, f"{verb} {r.DONE}")
        return
    folders = _account(session).folders()
    select = {option.upper() for option in command.select_options}
    returns = {option.upper() for option in command.return_options}
    matchers = [_pattern(command.reference + p) for p in command.patterns]
    for folder in folders:
        if not any(match(folder.name) for match in matchers):
            continue
        if (command.lsub or "SUBSCRIBED" in select) and not folder.subscribed:
            continue
        if "SPECIAL-USE" in select and folder.special_use is None:
            continue
        attributes = _attributes(folder, command, select | returns)
        name = mailbox_name(folder.name, session.utf8)
        yield (f"* {verb} ({' '.join(attributes)}) \"/\" ".encode() + name + b"\r\n")
        if command.status_items:
            yield _status_line(session, folder.name,
                               _account(session).status(folder.name), command.status_items)
    yield r.tagged_ok(command.tag, f"{verb} {r.DONE}")


def _attributes(folder: FolderInfo, command: m.ListMailboxes, options: set[str]) -> list[str]:
    if command.lsub:
        return []           # LSUB shows only \Noselect, for what no longer exists
    attributes = ["\\HasChildren" if folder.has_children else "\\HasNoChildren"]
    if folder.subscribed and ("SUBSCRIBED" in options or command.lsub):
        attributes.append("\\Subscribed")
    if folder.special_use is not None and (not command.extended or "SPECIAL-USE" in options
                                           or not options):
        attributes.append(folder.special_use.value)
    return attributes


def _pattern(pattern: str) -> Callable[[str], bool]:
    """`*` matches anything, `%` anything but the delimiter (RFC 9051 6.3.9); INBOX in any
    case."""
    parts = [".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern]
    regex = re.compile("".join(parts) + r"\Z", re.DOTALL)
    inbox = re.compile("".join(parts) + r"\Z", re.DOTALL | re.IGNORECASE)

    def match(name: str) -> bool:
        if name == INBOX:
            return bool(inbox.match(name))
        return bool(regex.match(name))
    return match


# -- STATUS ----------------------------------------------------------------------------------

def status(session: ImapSession, command: m.Status) -> Iterator[bytes]:
    result = _account(session).status(command.mailbox)
    if any(item.upper() == "HIGHESTMODSEQ" for item in command.items):
        session.condstore = True
    yield _status_line(session, command.mailbox, result, command.items)
    yield r.tagged_ok(command.tag, "STATUS " + r.DONE)


def _status_line(session: ImapSession, name: str, result: FolderStatus,
                 items: tuple[str, ...]) -> bytes:
    values = {"MESSAGES": result.messages, "UIDNEXT": result.uidnext,
              "UIDVALIDITY": result.uidvalidity, "UNSEEN": result.unseen,
              "DELETED": result.deleted, "SIZE": result.size,
              "HIGHESTMODSEQ": result.highest_modseq, "RECENT": result.recent,
              "APPENDLIMIT": session.config.max_append}
    pairs = " ".join(f"{item.upper()} {values[item.upper()]}" for item in items
                     if item.upper() in values)
    return b"* STATUS " + mailbox_name(name, session.utf8) + f" ({pairs})\r\n".encode()


# -- APPEND ----------------------------------------------------------------------------------

def append(session: ImapSession, command: m.Append) -> Iterator[bytes]:
    account = _account(session)
    if any(message.data.size > session.config.max_append for message in command.messages):
        yield r.tagged_no(command.tag, r.TOO_BIG, "TOOBIG")
        return
    uids: list[int] = []
    uidvalidity = 0
    for message in command.messages:
        content = message.data.read()
        if not content:
            yield r.tagged_no(command.tag, "Empty message", "CANNOT")
            return
        flags = frozenset(f for f in message.flags if f.upper() != "\\RECENT")
        date = message.internal_date.timestamp() if message.internal_date else None
        result = account.append(command.mailbox, content, flags, date)
        uidvalidity = result.uidvalidity
        uids += result.target_uids
    code = f"APPENDUID {uidvalidity} {NumberSet.from_values(uids)}"
    yield r.tagged_ok(command.tag, "APPEND " + r.DONE, code)


# -- QUOTA (RFC 9208) ------------------------------------------------------------------------

def _quota_line(session: ImapSession) -> bytes | None:
    usage = _account(session).quota()
    resources = []
    if usage.storage_limit is not None:
        resources.append(f"STORAGE {(usage.storage_used + 1023) // 1024} "
                         f"{usage.storage_limit // 1024}")
    if usage.messages_limit is not None:
        resources.append(f"MESSAGE {usage.messages_used} {usage.messages_limit}")
    if not resources:
        return None
    return f'* QUOTA "" ({" ".join(resources)})\r\n'.encode()


def get_quota_root(session: ImapSession, command: m.GetQuotaRoot) -> Iterator[bytes]:
    _account(session).status(command.mailbox)      # NONEXISTENT for a missing mailbox
    line = _quota_line(session)
    name = mailbox_name(command.mailbox, session.utf8)
    yield b"* QUOTAROOT " + name + (b' ""' if line else b"") + b"\r\n"
    if line:
        yield line
    yield r.tagged_ok(command.tag, "GETQUOTAROOT " + r.DONE)


def get_quota(session: ImapSession, command: m.GetQuota) -> Iterator[bytes]:
    line = _quota_line(session) if command.root == "" else None
    if line is None:
        raise NoSuchFolderError(r.NO_QUOTA_ROOT)
    yield line
    yield r.tagged_ok(command.tag, "GETQUOTA " + r.DONE)


def set_quota(session: ImapSession, command: m.SetQuota) -> Iterator[bytes]:
    yield r.tagged_no(command.tag, r.SETQUOTA_REFUSED, "NOPERM")
