"""From a received command to a typed one: the name looked up in `state.COMMANDS`, the state
checked once, then the command's own parser run over its arguments."""

from __future__ import annotations

from appliance.imap import state as states
from appliance.imap.commands.base import CommandError, ImapCommand, ParseContext
from appliance.imap.grammar import Cursor, ParseError, keyword
from appliance.imap.receiver import Command


def parse_command(received: Command, state: states.State,
                  ctx: ParseContext | None = None) -> ImapCommand:
    """The typed command for `received` in `state`.

    Raises:
        CommandError: unknown command, not allowed in `state`, or bad arguments; it carries
            the tagged reply (BAD, or NO with a response code such as BADCHARSET).
    """
    ctx = ctx or ParseContext()
    c = Cursor(received.args, received.literals)
    name = received.name
    try:
        if name == "UID":
            name = "UID " + keyword(c)
            if not c.at_end():
                c.sp()
        spec = states.COMMANDS.get(name)
        if spec is None:
            raise CommandError(received.tag, "Unknown command")
        if state not in spec.states:
            raise CommandError(received.tag, f"{name} is not allowed in the {state.value} state")
        return spec.parser(received.tag, c, ctx)
    except ParseError as exc:
        raise CommandError(received.tag, f"{name}: {exc.text}", exc.status, exc.code) from None
    except RecursionError:
        raise CommandError(received.tag, f"{name}: too deeply nested") from None
