"""IMAP command argument parsers: a received `receiver.Command` to a typed command dataclass.

One module per command group (`any_state`, `mailboxes`, `selected`), the shared types in
`base`; which command may run in which state is data in `appliance.imap.state`, and
`dispatch.parse_command` checks it once before the parser runs.
"""

from appliance.imap.commands.base import CommandError, ImapCommand, ParseContext
from appliance.imap.commands.dispatch import parse_command

__all__ = ["CommandError", "ImapCommand", "ParseContext", "parse_command"]
