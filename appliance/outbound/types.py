"""The values passed between the spool, the runner and the transport (no I/O here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    """What one delivery attempt did for one recipient."""

    DELIVERED = "delivered"    # the peer answered 2xx
    DEFERRED = "deferred"      # 4xx, timeout, no route, TLS policy failure: try again later
    FAILED = "failed"          # 5xx or a permanent DNS answer (null MX, no such domain)


@dataclass(frozen=True)
class OutboundRecipient:
    """One envelope recipient of a queued message, with its RFC 3461 parameters."""

    address: str
    notify: tuple[str, ...] = ()      # RFC 3461 NOTIFY: SUCCESS, FAILURE, DELAY or NEVER
    orcpt: str | None = None          # RFC 3461 ORCPT, e.g. "rfc822;user@example.org"


@dataclass(frozen=True)
class OutboundEnvelope:
    """What the transport needs to send one message to one destination domain."""

    queue_id: str
    sender: str                                   # "" is the null reverse-path
    recipients: tuple[OutboundRecipient, ...]     # all in the same destination domain
    size: int
    smtputf8: bool = False
    body_8bit: bool = False
    envid: str | None = None                      # RFC 3461 ENVID
    ret: str | None = None                        # RFC 3461 RET: FULL or HDRS


@dataclass(frozen=True)
class RecipientResult:
    """The result of one attempt for one recipient, with the peer's reply for the log/DSN."""

    address: str
    outcome: Outcome
    reply: str                                    # e.g. "550 5.1.1 no such user"
    remote_host: str | None = None                # the MX host that answered, if any
    details: dict[str, str] = field(default_factory=dict)
