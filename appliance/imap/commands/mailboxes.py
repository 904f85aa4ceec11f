"""Commands of the authenticated state that name mailboxes (RFC 9051 6.3): SELECT/EXAMINE
(RFC 7162 CONDSTORE/QRESYNC), CREATE (RFC 6154 USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
LIST (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154), LSUB, NAMESPACE, STATUS,
APPEND (RFC 3502 MULTIAPPEND, RFC 3516 literal8, RFC 6855 UTF8), and the quota commands
(RFC 9208)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from appliance.imap.commands.base import ImapCommand, ParseContext
from appliance.imap.grammar import (
    UINT63_MAX,
    Cursor,
    ParseError,
    astring,
    date_time,
    flag,
    flag_list,
    keyword,
    list_mailbox,
    literal,
    mailbox,
    mod_sequence,
    number,
    nz_number,
    paren_list,
    utf8,
)
from appliance.imap.literals import LiteralData
from appliance.imap.sequence_set import SequenceSet, sequence_set

STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
                "HIGHESTMODSEQ", "APPENDLIMIT")
LIST_SELECT_OPTIONS = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
LIST_RETURN_OPTIONS = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")
SPECIAL_USES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


@dataclass(frozen=True)
class QResync:
    """QRESYNC select parameter (RFC 7162 3.2.5.1)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    known_sequences: SequenceSet | None = None    # seq-match-data: sequence numbers...
    known_sequence_uids: SequenceSet | None = None  # ... and the UIDs they had


@dataclass(frozen=True)
class Select(ImapCommand):
    mailbox: str
    readonly: bool = False          # EXAMINE
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True)
class Create(ImapCommand):
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delete(ImapCommand):
    mailbox: str


@dataclass(frozen=True)
class Rename(ImapCommand):
    old: str
    new: str


@dataclass(frozen=True)
class Subscribe(ImapCommand):
    mailbox: str
    subscribe: bool = True          # False: UNSUBSCRIBE


@dataclass(frozen=True)
class ListMailboxes(ImapCommand):
    """LIST (and LSUB, `lsub`); `extended` when any LIST-EXTENDED syntax was used, which
    changes the reply (RFC 5258 3)."""

    reference: str
    patterns: tuple[str, ...]
    select_options: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    status_items: tuple[str, ...] = ()
    extended: bool = False
    lsub: bool = False


@dataclass(frozen=True)
class Namespace(ImapCommand):
    pass


@dataclass(frozen=True)
class Status(ImapCommand):
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class AppendMessage:
    data: LiteralData
    flags: tuple[str, ...] = ()
    internal_date: dt.datetime | None = None
    utf8: bool = False             # sent as UTF8 (literal8), RFC 6855 4


@dataclass(frozen=True)
class Append(ImapCommand):
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True)
class GetQuota(ImapCommand):
    root: str


@dataclass(frozen=True)
class GetQuotaRoot(ImapCommand):
    mailbox: str


@dataclass(frozen=True)
class SetQuota(ImapCommand):
    root: str
    limits: tuple[tuple[str, int], ...]


def _mailbox_only(c: Cursor, ctx: ParseContext) -> str:
    name = mailbox(c, ctx.utf8)
    c.end()
    return name


def select(tag: str, c: Cursor, ctx: ParseContext, readonly: bool = False) -> Select:
    """select = "SELECT" SP mailbox [select-params]
    select-params = SP "(" select-param *(SP select-param) ")"
    select-param = "CONDSTORE" / "QRESYNC" SP "(" uidvalidity SP mod-sequence-value
                   [SP known-uids] [SP seq-match-data] ")"       (RFC 7162 7)"""
    name = mailbox(c, ctx.utf8)
    condstore, qresync = False, None
    if not c.at_end():
        c.sp()
        for param in paren_list(c, _select_param, allow_empty=False):
            if param is None:
                condstore = True
            else:
                qresync = param
    c.end()
    return Select(tag, name, readonly, condstore, qresync)


def examine(tag: str, c: Cursor, ctx: ParseContext) -> Select:
    return select(tag, c, ctx, readonly=True)


def _select_param(c: Cursor) -> QResync | None:
    name = keyword(c)
    if name == "CONDSTORE":
        return None
    if name != "QRESYNC":
        raise ParseError(f"Unknown SELECT parameter {name}")
    c.sp()
    c.expect(b"(")
    uidvalidity = nz_number(c)
    c.sp()
    modseq = mod_sequence(c)
    known_uids = seqs = uids = None
    if c.accept(b" ") and c.peek() != b"(":
        known_uids = sequence_set(c, allow_saved=False)
        c.accept(b" ")
    if c.accept(b"("):
        seqs = sequence_set(c, allow_saved=False)
        c.sp()
        uids = sequence_set(c, allow_saved=False)
        c.expect(b")")
    c.expect(b")")
    return QResync(uidvalidity, modseq, known_uids, seqs, uids)


def create(tag: str, c: Cursor, ctx: ParseContext) -> Create:
    """create = "CREATE" SP mailbox [create-params]
    create-param = "USE" SP "(" [use-attr *(SP use-attr)] ")"      (RFC 6154 6)"""
    name = mailbox(c, ctx.utf8)
    uses: list[str] = []
    if not c.at_end():
        c.sp()
        c.expect(b"(")
        c.expect(b"USE ")
        uses = paren_list(c, _use_attr)
        c.expect(b")")
    c.end()
    return Create(tag, name, tuple(uses))


def _use_attr(c: Cursor) -> str:
    value = flag(c)
    canonical = {use.upper(): use for use in SPECIAL_USES}.get(value.upper())
    if canonical is None:
        raise ParseError("Unknown special-use attribute", status="NO", code="USEATTR")
    return canonical


def delete(tag: str, c: Cursor, ctx: ParseContext) -> Delete:
    return Delete(tag, _mailbox_only(c, ctx))


def rename(tag: str, c: Cursor, ctx: ParseContext) -> Rename:
    """rename = "RENAME" SP mailbox SP mailbox"""
    old = mailbox(c, ctx.utf8)
    c.sp()
    return Rename(tag, old, _mailbox_only(c, ctx))


def subscribe(tag: str, c: Cursor, ctx: ParseContext) -> Subscribe:
    return Subscribe(tag, _mailbox_only(c, ctx))


def unsubscribe(tag: str, c: Cursor, ctx: ParseContext) -> Subscribe:
    return Subscribe(tag, _mailbox_only(c, ctx), subscribe=False)


def list_command(tag: str, c: Cursor, ctx: ParseContext) -> ListMailboxes:
    """list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    mbox-or-pat = list-mailbox / patterns;  patterns = "(" list-mailbox *(SP ...) ")"
    list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"  (RFC 5258)"""
    select_options: list[str] = []
    extended = False
    if c.peek() == b"(":
        select_options, extended = paren_list(c, _list_select_option), True
        c.sp()
        if "RECURSIVEMATCH" in select_options and len(set(select_options)) == 1:
            raise ParseError("RECURSIVEMATCH needs another selection option")
    reference = mailbox(c, ctx.utf8)
    c.sp()
    if c.peek() == b"(":
        patterns, extended = paren_list(c, lambda c: list_mailbox(c, ctx.utf8), False), True
    else:
        patterns = [list_mailbox(c, ctx.utf8)]
    returns: list[tuple[str, tuple[str, ...]]] = []
    if not c.at_end():
        c.expect(b" RETURN ")
        returns, extended = paren_list(c, _list_return_option), True
    c.end()
    status = next((items for name, items in returns if name == "STATUS"), ())
    return ListMailboxes(tag, reference, tuple(patterns), tuple(dict.fromkeys(select_options)),
                         tuple(dict.fromkeys(name for name, _ in returns)), status, extended)


def _list_select_option(c: Cursor) -> str:
    name = keyword(c)
    if name not in LIST_SELECT_OPTIONS:
        raise ParseError(f"Unknown LIST selection option {name}")
    return name


def _list_return_option(c: Cursor) -> tuple[str, tuple[str, ...]]:
    """return-option = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE" /
                       "STATUS" SP "(" status-att *(SP status-att) ")"   (RFC 5819)"""
    name = keyword(c)
    if name not in LIST_RETURN_OPTIONS:
        raise ParseError(f"Unknown LIST return option {name}")
    if name != "STATUS":
        return name, ()
    c.sp()
    return name, tuple(dict.fromkeys(paren_list(c, _status_item, allow_empty=False)))


def lsub(tag: str, c: Cursor, ctx: ParseContext) -> ListMailboxes:
    """lsub = "LSUB" SP mailbox SP list-mailbox"""
    reference = mailbox(c, ctx.utf8)
    c.sp()
    pattern = list_mailbox(c, ctx.utf8)
    c.end()
    return ListMailboxes(tag, reference, (pattern,), lsub=True)


def status(tag: str, c: Cursor, ctx: ParseContext) -> Status:
    """status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")" """
    name = mailbox(c, ctx.utf8)
    c.sp()
    items = paren_list(c, _status_item, allow_empty=False)
    c.end()
    return Status(tag, name, tuple(dict.fromkeys(items)))


def _status_item(c: Cursor) -> str:
    name = keyword(c)
    if name not in STATUS_ITEMS:
        raise ParseError(f"Unknown STATUS item {name}")
    return name


def append(tag: str, c: Cursor, ctx: ParseContext) -> Append:
    """append = "APPEND" SP mailbox 1*append-message          (RFC 3502 MULTIAPPEND)
    append-message = append-opts SP append-data
    append-opts = [SP flag-list] [SP date-time]
    append-data = literal / literal8 / "UTF8" SP "(" literal8 ")"   (RFC 3516, RFC 6855)"""
    name = mailbox(c, ctx.utf8)
    messages: list[AppendMessage] = []
    while not c.at_end() or not messages:
        c.sp()
        messages.append(_append_message(c))
    c.end()
    return Append(tag, name, tuple(messages))


def _append_message(c: Cursor) -> AppendMessage:
    flags: tuple[str, ...] = ()
    when = None
    if c.peek() == b"(":
        flags = flag_list(c)
        c.sp()
    if c.peek() == b'"':
        when = date_time(c)
        c.sp()
    if c.accept(b"UTF8 ("):
        data = literal(c)
        if not data.binary:
            raise ParseError("UTF8 APPEND data must be a literal8")
        c.expect(b")")
        return AppendMessage(data, flags, when, utf8=True)
    return AppendMessage(literal(c), flags, when)


def get_quota(tag: str, c: Cursor, ctx: ParseContext) -> GetQuota:
    """getquota = "GETQUOTA" SP quota-root-name;  quota-root-name = astring"""
    root = utf8(astring(c), "quota root")
    c.end()
    return GetQuota(tag, root)


def get_quota_root(tag: str, c: Cursor, ctx: ParseContext) -> GetQuotaRoot:
    return GetQuotaRoot(tag, _mailbox_only(c, ctx))


def set_quota(tag: str, c: Cursor, ctx: ParseContext) -> SetQuota:
    """setquota = "SETQUOTA" SP quota-root-name SP setquota-list
    setquota-resource = resource-name SP resource-limit       (RFC 9208 4)"""
    root = utf8(astring(c), "quota root")
    c.sp()

    def resource(c: Cursor) -> tuple[str, int]:
        name = keyword(c)
        c.sp()
        return name, number(c, UINT63_MAX)

    limits = paren_list(c, resource)
    c.end()
    return SetQuota(tag, root, tuple(limits))


def namespace(tag: str, c: Cursor, ctx: ParseContext) -> Namespace:
    c.end()
    return Namespace(tag)

