"""The queue operations of the CLI and console, on a `Queue`, with JSON-ready answers.

The engine runs these behind the control socket (and wakes its runner); without a running
engine the CLI runs them on the spool directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from appliance.control.messages import ControlError
from appliance.storage.interfaces import Queue, QueuedMessage


class QueueOps:
    """list, show, retry, delete, flush."""

    def __init__(self, queue: Queue, wake: Callable[[], None] = lambda: None,
                 in_flight: Callable[[], frozenset[str]] = frozenset) -> None:
        self._queue = queue
        self._wake = wake
        self._in_flight = in_flight

    def call(self, op: str, args: dict[str, str]) -> Any:
        """Run one op (names as in `messages.OPS`)."""
        if op == "ping":
            return "pong"
        if op == "queue.list":
            return [summary(m, self._in_flight()) for m in self._queue.messages()]
        if op == "queue.flush":
            count = self._queue.retry(None, time.time())
            self._wake()
            return {"recipients": count}
        if "queue_id" not in args:      # an op another handler answers (engine.*) or none
            raise ControlError(f"unknown op {op!r}")
        queue_id = args["queue_id"]
        if op == "queue.show":
            return detail(self._existing(queue_id), self._in_flight())
        if op == "queue.retry":
            self._existing(queue_id)
            count = self._queue.retry(queue_id, time.time())
            self._wake()
            return {"queue_id": queue_id, "recipients": count}
        if op == "queue.delete":
            if not self._queue.remove(_checked(queue_id)):
                raise ControlError(f"no queued message {queue_id}")
            return {"queue_id": queue_id, "deleted": True}
        raise ControlError(f"unknown op {op!r}")

    def _existing(self, queue_id: str) -> QueuedMessage:
        message = self._queue.get(_checked(queue_id))
        if message is None:
            raise ControlError(f"no queued message {queue_id}")
        return message


def _checked(queue_id: str) -> str:
    if not queue_id.isascii() or not queue_id.isalnum():
        raise ControlError(f"not a queue id: {queue_id!r}")
    return queue_id


def summary(message: QueuedMessage, in_flight: frozenset[str]) -> dict[str, Any]:
    pending = message.pending
    return {
        "queue_id": message.queue_id, "sender": message.sender, "size": message.size,
        "queued_at": message.queued_at, "recipients": len(message.recipients),
        "pending": len(pending), "active": message.queue_id in in_flight,
        "next_try": min((r.next_try for r in pending), default=None),
        # why it is still here, per recipient (what `mailq` prints under each message)
        "deferred": [{"address": r.address, "last_reply": r.last_reply}
                     for r in pending if r.last_reply],
    }


def detail(message: QueuedMessage, in_flight: frozenset[str]) -> dict[str, Any]:
    return {
        **summary(message, in_flight), "envid": message.envid, "ret": message.ret,
        "smtputf8": message.smtputf8, "body_8bit": message.body_8bit,
        "recipient_list": [{
            "address": r.address, "state": r.state.value, "attempts": r.attempts,
            "next_try": r.next_try, "last_reply": r.last_reply, "remote_host": r.remote_host,
            "notify": list(r.notify), "orcpt": r.orcpt, "delay_warned": r.delay_warned,
        } for r in message.recipients],
    }
