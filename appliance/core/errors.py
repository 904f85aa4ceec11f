"""The MailError family: each error carries the reply a client sees and a private reason.

Following maddy's exterrors: the client gets a short, policy-level reply; the log gets why.
Anything that is not a MailError is treated as temporary (STYLE.md practice 7).
"""

from __future__ import annotations


class MailError(Exception):
    """An error with a wire reply (`reply`) and a reason for the log (`reason`)."""

    def __init__(self, reply: str, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply
        self.reason = reason

    @property
    def temporary(self) -> bool:
        return self.reply.startswith("4")


class DeliveryError(MailError):
    """Storing a message failed; nothing of it was left behind."""
