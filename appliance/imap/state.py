"""The IMAP session states (RFC 9051 3) and, as one table, which command each state allows
and which parser reads its arguments (STYLE.md practice 2; pymap's state.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.imap.commands import any_state as a
from appliance.imap.commands import mailboxes as m
from appliance.imap.commands import messages as s
from appliance.imap.commands.base import Parser


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
# RFC 9051 6.3: the authenticated-state commands are valid in the selected state too.
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True)
class CommandSpec:
    parser: Parser
    states: frozenset[State]


COMMANDS: dict[str, CommandSpec] = {
    # any state (RFC 9051 6.1, RFC 2971)
    "CAPABILITY": CommandSpec(a.no_arguments(a.Capability), _ANY),
    "NOOP": CommandSpec(a.no_arguments(a.Noop), _ANY),
    "LOGOUT": CommandSpec(a.no_arguments(a.Logout), _ANY),
    "ID": CommandSpec(a.id_command, _ANY),
    # not authenticated (6.2)
    "STARTTLS": CommandSpec(a.no_arguments(a.StartTls), _NOT_AUTH),
    "AUTHENTICATE": CommandSpec(a.authenticate, _NOT_AUTH),
    "LOGIN": CommandSpec(a.login, _NOT_AUTH),
    # authenticated (6.3); ENABLE only before a mailbox is selected (RFC 5161 3.1)
    "ENABLE": CommandSpec(a.enable, frozenset({State.AUTHENTICATED})),
    "SELECT": CommandSpec(m.select, _AUTH),
    "EXAMINE": CommandSpec(m.examine, _AUTH),
    "CREATE": CommandSpec(m.create, _AUTH),
    "DELETE": CommandSpec(m.delete, _AUTH),
    "RENAME": CommandSpec(m.rename, _AUTH),
    "SUBSCRIBE": CommandSpec(m.subscribe, _AUTH),
    "UNSUBSCRIBE": CommandSpec(m.unsubscribe, _AUTH),
    "LIST": CommandSpec(m.list_command, _AUTH),
    "LSUB": CommandSpec(m.lsub, _AUTH),
    "NAMESPACE": CommandSpec(m.namespace, _AUTH),
    "STATUS": CommandSpec(m.status, _AUTH),
    "APPEND": CommandSpec(m.append, _AUTH),
    "IDLE": CommandSpec(a.no_arguments(a.Idle), _AUTH),
    "GETQUOTA": CommandSpec(m.get_quota, _AUTH),
    "GETQUOTAROOT": CommandSpec(m.get_quota_root, _AUTH),
    "SETQUOTA": CommandSpec(m.set_quota, _AUTH),
    # selected (6.4)
    "CHECK": CommandSpec(s.check, _SELECTED),
    "CLOSE": CommandSpec(s.close, _SELECTED),
    "UNSELECT": CommandSpec(s.unselect, _SELECTED),
    "EXPUNGE": CommandSpec(s.expunge, _SELECTED),
    "SEARCH": CommandSpec(s.search, _SELECTED),
    "FETCH": CommandSpec(s.fetch, _SELECTED),
    "STORE": CommandSpec(s.store, _SELECTED),
    "COPY": CommandSpec(s.copy, _SELECTED),
    "MOVE": CommandSpec(s.move, _SELECTED),
    "UID EXPUNGE": CommandSpec(s.uid_expunge, _SELECTED),
    "UID SEARCH": CommandSpec(s.uid_search, _SELECTED),
    "UID FETCH": CommandSpec(s.uid_fetch, _SELECTED),
    "UID STORE": CommandSpec(s.uid_store, _SELECTED),
    "UID COPY": CommandSpec(s.uid_copy, _SELECTED),
    "UID MOVE": CommandSpec(s.uid_move, _SELECTED),
}


def allowed(state: State) -> list[str]:
    """The commands `state` allows, in table order."""
    return [name for name, spec in COMMANDS.items() if state in spec.states]
