"""Retry policy (pure): when to try a deferred recipient again, when to warn, when to give up.

Backoff: `first_retry` seconds after the first failed attempt, doubling with each further
one up to `max_retry`, each wait spread by +-`jitter` so that a queue that filled while a
peer was down does not hit it all at once when it returns. A recipient still deferred
`max_age` seconds after the message was queued is given up (RFC 5321 4.5.4.1 suggests 4-5
days); one delay warning is sent after `delay_warning` seconds if NOTIFY allows it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.outbound.types import Outcome, RecipientResult
from appliance.storage.interfaces import QueuedRecipient, RecipientState, RecipientUpdate

EXPIRED_REPLY = "5.4.7 Delivery time expired: gave up retrying"   # RFC 3463 X.4.7
RELAYED_DETAIL = "dsn_relayed"     # RecipientResult.details key set by the transport


@dataclass(frozen=True)
class RetryPolicy:
    """The queue's timing settings (`queue.*`), in seconds."""

    first_retry: float = 300.0
    max_retry: float = 3600.0
    max_age: float = 5 * 86_400.0
    delay_warning: float = 4 * 3600.0      # 0: never
    jitter: float = 0.2                    # +-20 % of each wait


class Notice(enum.Enum):
    """Which DSN an attempt's result calls for (RFC 3464 2.3.3 Action values)."""

    NONE = "none"
    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"     # delivered into a mailbox here
    RELAYED = "relayed"         # handed to a peer that will not send DSNs itself


@dataclass(frozen=True)
class Decision:
    """The new state of one recipient and the DSN to send for it, if any."""

    update: RecipientUpdate
    notice: Notice


def backoff(policy: RetryPolicy, attempts: int, unit_random: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1 = the first).

    Args:
        unit_random: a number in [0, 1) (random.random()) that picks the jitter.
    """
    exponent = min(max(attempts - 1, 0), 32)
    base = min(policy.first_retry * float(2 ** exponent), policy.max_retry)
    return base * (1 + policy.jitter * (2 * unit_random - 1))


def wants(notify: tuple[str, ...], kind: str) -> bool:
    """Does NOTIFY ask for `kind` (SUCCESS, FAILURE, DELAY)? Absent NOTIFY means
    FAILURE and DELAY (RFC 3461 4.1 leaves it to us; this is what Postfix does)."""
    if not notify:
        return kind in ("FAILURE", "DELAY")
    return kind in notify


def decide(policy: RetryPolicy, recipient: QueuedRecipient, result: RecipientResult,
           queued_at: float, now: float, unit_random: float) -> Decision:
    """Turn one attempt's result into the recipient's new state and the DSN it calls for.

    A peer that advertised DSN got NOTIFY=SUCCESS passed on and reports success itself; for
    one that did not, the transport marks the result `dsn_relayed` and we owe the `relayed`
    report (RFC 3461 5.2.2).
    """
    if result.outcome is Outcome.DELIVERED:
        owed = "SUCCESS" in recipient.notify and result.details.get(RELAYED_DETAIL) == "true"
        notice = Notice.RELAYED if owed else Notice.NONE
        return _final(recipient, RecipientState.DELIVERED, result, now, notice)
    if result.outcome is Outcome.FAILED:
        return _final(recipient, RecipientState.FAILED, result, now, _failure(recipient))
    if now - queued_at >= policy.max_age:
        expired = RecipientResult(result.address, Outcome.FAILED,
                                  f"{EXPIRED_REPLY}; last reply: {result.reply}",
                                  result.remote_host)
        return _final(recipient, RecipientState.FAILED, expired, now, _failure(recipient))
    warn = (policy.delay_warning > 0 and not recipient.delay_warned
            and now - queued_at >= policy.delay_warning and wants(recipient.notify, "DELAY"))
    next_try = min(now + backoff(policy, recipient.attempts + 1, unit_random),
                   queued_at + policy.max_age)
    update = RecipientUpdate(recipient.address, RecipientState.QUEUED, next_try, result.reply,
                             result.remote_host, recipient.delay_warned or warn)
    return Decision(update, Notice.DELAYED if warn else Notice.NONE)


def _failure(recipient: QueuedRecipient) -> Notice:
    return Notice.FAILED if wants(recipient.notify, "FAILURE") else Notice.NONE


def _final(recipient: QueuedRecipient, state: RecipientState, result: RecipientResult,
           now: float, notice: Notice) -> Decision:
    update = RecipientUpdate(recipient.address, state, now, result.reply, result.remote_host,
                             recipient.delay_warned)
    return Decision(update, notice)
