"""The TRANSACTION state: STAT, LIST, RETR, TOP, DELE, NOOP, RSET, UIDL, and QUIT's UPDATE.

RFC 1939 5-7 and RFC 2449 (TOP and UIDL are optional there; we offer both). A message
marked deleted cannot be named again until RSET; nothing is removed before QUIT, and a
connection that ends without QUIT removes nothing (RFC 1939 6).
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.pop3 import replies, wire
from appliance.pop3.actions import MessageAnswer, ReadMessage, RemoveAnswer, RemoveMessages, Result
from appliance.pop3.context import SessionData, Step, bad, reply
from appliance.pop3.maildrop import Maildrop
from appliance.pop3.state import State
from appliance.pop3.wire import Command

_Value = Callable[[Maildrop, int], str]     # what LIST and UIDL show for one message


def stat(data: SessionData, command: Command) -> Step:
    """RFC 1939 5: "+OK nn mm", counting only messages not marked deleted."""
    drop = _maildrop(data)
    if command.params:
        return bad(replies.SYNTAX_ERROR)
    return reply(replies.STAT, count=drop.count(), size=drop.size())


def list_(data: SessionData, command: Command) -> Step:
    """RFC 1939 5: the scan listing of one message, or of every one not deleted."""
    return _listing(data, command, replies.SCAN_LISTING, replies.MAILDROP,
                    lambda drop, n: str(drop.octets(n)))


def uidl(data: SessionData, command: Command) -> Step:
    """RFC 1939 7: the unique-id listing (Dovecot's format, see `Maildrop.unique_id`)."""
    return _listing(data, command, replies.UIDL_LISTING, replies.UIDL_FOLLOWS,
                    lambda drop, n: drop.unique_id(n))


def retr(data: SessionData, command: Command) -> Step:
    """RFC 1939 5: the whole message, dot-stuffed."""
    params = command.params
    if len(params) != 1:
        return bad(replies.SYNTAX_ERROR)
    return _read(data, params[0], None)


def top(data: SessionData, command: Command) -> Step:
    """RFC 1939 7: the header and the first n lines of the body."""
    params = command.params
    lines = wire.parse_number(params[1]) if len(params) == 2 else None
    if lines is None:
        return bad(replies.SYNTAX_ERROR)
    return _read(data, params[0], lines)


def dele(data: SessionData, command: Command) -> Step:
    """RFC 1939 5: mark a message deleted (it goes at QUIT)."""
    params = command.params
    if len(params) != 1:
        return bad(replies.SYNTAX_ERROR)
    number = wire.parse_number(params[0])
    drop = _maildrop(data)
    if number is None:
        return bad(replies.SYNTAX_ERROR)
    if not drop.exists(number):
        return reply(replies.NO_SUCH_MESSAGE)
    if number in drop.deleted:
        return reply(replies.ALREADY_DELETED, number=number)
    drop.deleted.add(number)
    return reply(replies.DELETED, number=number)


def noop(data: SessionData, command: Command) -> Step:
    return bad(replies.SYNTAX_ERROR) if command.params else reply(replies.OK)


def rset(data: SessionData, command: Command) -> Step:
    """RFC 1939 5: unmark every message marked deleted."""
    if command.params:
        return bad(replies.SYNTAX_ERROR)
    drop = _maildrop(data)
    drop.deleted.clear()
    return reply(replies.MAILDROP, count=drop.count(), size=drop.size())


def quit_(data: SessionData, command: Command) -> Step:
    """RFC 1939 6: QUIT in TRANSACTION enters UPDATE and removes the marked messages;
    in AUTHORIZATION (RFC 1939 4) it only ends the session."""
    if data.state is not State.TRANSACTION:
        data.state = State.CLOSED
        return Step(wire.status(replies.BYE), close=True)
    data.state = State.UPDATE
    uids = _maildrop(data).deleted_uids()
    if not uids:
        return _bye(data, RemoveAnswer(ok=True))
    return Step(action=RemoveMessages(uids), then=_bye)


def _bye(data: SessionData, result: Result) -> Step:
    assert isinstance(result, RemoveAnswer)
    data.state = State.CLOSED
    if not result.ok:
        return Step(wire.status(replies.UPDATE_FAILED), close=True)
    return Step(wire.status(replies.BYE_UPDATED.format(count=_maildrop(data).count())),
                close=True)


class _ReadFollowUp:
    """Turns the message read for RETR (all of it) or TOP (`body_lines`) into the reply."""

    def __init__(self, body_lines: int | None) -> None:
        self.body_lines = body_lines

    def __call__(self, data: SessionData, result: Result) -> Step:
        assert isinstance(result, MessageAnswer)
        if result.content is None:
            return reply(replies.MESSAGE_GONE if result.gone else replies.READ_FAILED)
        if self.body_lines is None:
            first = replies.RETR_FOLLOWS.format(size=len(result.content))
            return Step(wire.status(first), message=result.content)
        part = wire.top(result.content, self.body_lines)
        return Step(wire.status(replies.TOP_FOLLOWS), message=part)


def _maildrop(data: SessionData) -> Maildrop:
    assert data.maildrop is not None, "TRANSACTION without a maildrop"
    return data.maildrop


def _message(data: SessionData, text: str) -> int | Step:
    """The number of a message that exists and is not marked deleted, or the refusal."""
    number = wire.parse_number(text)
    if number is None:
        return bad(replies.SYNTAX_ERROR)
    drop = _maildrop(data)
    if not drop.exists(number) or number in drop.deleted:
        return reply(replies.NO_SUCH_MESSAGE)
    return number


def _read(data: SessionData, text: str, body_lines: int | None) -> Step:
    """RETR and TOP: ask for the message named by `text` (or refuse)."""
    found = _message(data, text)
    if isinstance(found, Step):
        return found
    return Step(action=ReadMessage(_maildrop(data).uid(found)), then=_ReadFollowUp(body_lines))


def _listing(data: SessionData, command: Command, one: str, header: str,
             value: _Value) -> Step:
    """LIST and UIDL: one message's line, or a multi-line listing of all not deleted."""
    params = command.params
    drop = _maildrop(data)
    if len(params) > 1:
        return bad(replies.SYNTAX_ERROR)
    if params:
        found = _message(data, params[0])
        if isinstance(found, Step):
            return found
        text = value(drop, found)
        return reply(one, number=found, size=text, uid=text)
    lines = [f"{n} {value(drop, n)}" for n in drop.live()]
    return Step(wire.multiline(header.format(count=drop.count(), size=drop.size()), lines))

