"""POP3 session states, the commands each allows, and the session's limits, as data.

RFC 1939 3: a session is in the AUTHORIZATION state until the client identifies itself,
then in TRANSACTION until QUIT, which enters UPDATE (deletions are applied) and ends it.
SASL is the middle of an AUTH exchange (RFC 5034 4), where a line is a response, not a
command. (While an action is out with the driver, `Pop3Session.busy` holds every line.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.auth import sasl


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    SASL = "sasl"
    TRANSACTION = "transaction"
    UPDATE = "update"
    CLOSED = "closed"


# RFC 1939 4-7, RFC 2449 5 (CAPA in every state), RFC 2595 4 (STLS only before login),
# RFC 5034 4 (AUTH only before login).
COMMANDS: dict[State, frozenset[str]] = {
    State.AUTHORIZATION: frozenset({"CAPA", "STLS", "USER", "PASS", "AUTH", "QUIT"}),
    State.TRANSACTION: frozenset({"CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET",
                                  "TOP", "UIDL", "QUIT"}),
}
KNOWN_COMMANDS: frozenset[str] = frozenset().union(*COMMANDS.values())

# RFC 2449 4: "Commands ... may be up to 255 octets, including the terminating CRLF."
# RFC 5034 4: an AUTH command with its initial response obeys that limit; a response to a
# "+ " continuation may be longer, up to the largest PLAIN message we accept.
MAX_COMMAND_OCTETS = 255
MAX_SASL_LINE_OCTETS = sasl.MAX_RESPONSE_CHARS + 2


@dataclass(frozen=True)
class Limits:
    """Limits on what one client may do in one session (the `pop3.*` settings)."""

    max_bad_commands: int = 10      # unknown, misplaced, malformed, too long: then close
    max_login_failures: int = 3     # failed logins in one session: then close

    def line_limit(self, state: State) -> int:
        return MAX_SASL_LINE_OCTETS if state is State.SASL else MAX_COMMAND_OCTETS
