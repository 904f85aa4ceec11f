"""What the POP3 core asks its driver to do, and the results the driver hands back.

The core never logs in, touches the store or starts TLS itself (STYLE.md practice 1): it
returns one of these actions with its reply, and the driver performs it and calls
`Pop3Session.resume` with the result (`StartTls` excepted: the driver calls
`tls_started`). Results are plain data, so transcripts and fuzz tests can play them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from appliance.storage.mailbox_api import FolderSnapshot


@dataclass(frozen=True)
class StartTls:
    """Upgrade the connection now; the reply asking for it has been sent."""


@dataclass(frozen=True)
class Login:
    """Check a password through the login guard."""

    username: str
    password: str = field(repr=False)
    mechanism: str               # "USER" or "PLAIN", for the log


@dataclass(frozen=True)
class OpenMaildrop:
    """Lock the account's maildrop for this session and take a snapshot of its INBOX."""

    account: str


@dataclass(frozen=True)
class ReadMessage:
    """The message's bytes (CRLF line ends) from the store."""

    uid: int


@dataclass(frozen=True)
class RemoveMessages:
    """Apply the deletions (UPDATE state, RFC 1939 6)."""

    uids: tuple[int, ...]


Action = StartTls | Login | OpenMaildrop | ReadMessage | RemoveMessages


class LoginStatus(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"        # wrong password, unknown or disabled account
    LOCKED = "locked"            # locked out after failures
    UNAVAILABLE = "unavailable"  # overloaded or failing: temporary


@dataclass(frozen=True)
class LoginAnswer:
    status: LoginStatus
    account: str | None = None


class MaildropProblem(enum.Enum):
    IN_USE = "in_use"            # another POP3 session holds the lock
    TEMPORARY = "temporary"      # the store failed
    PERMANENT = "permanent"      # no mail store for this account


@dataclass(frozen=True)
class MaildropAnswer:
    snapshot: FolderSnapshot | None = None
    problem: MaildropProblem | None = None


@dataclass(frozen=True)
class MessageAnswer:
    content: bytes | None = None    # None: see `gone`
    gone: bool = False              # expunged meanwhile (IMAP); else the store failed


@dataclass(frozen=True)
class RemoveAnswer:
    ok: bool


Result = LoginAnswer | MaildropAnswer | MessageAnswer | RemoveAnswer
