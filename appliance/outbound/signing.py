"""The outbound signing hook: what the queue runner does to a message just before it leaves.

The runner reads a queued message, hands it to a `MessageSigner` once per delivery attempt
(in a worker thread: signing is CPU work), and sends the returned bytes to every destination
of that attempt. DKIM (issue 5) plugs in here: it signs mail whose sender is in a local
domain and leaves the rest alone. The size the peer sees (SIZE=) is the signed size.
Signing at attempt time, not at queueing time, means a key rotated while mail waits in the
queue is used for it, and the stored copy stays as the user sent it (bounces return that).
"""

from __future__ import annotations

from typing import Protocol


class MessageSigner(Protocol):
    """Turns the queued message into the bytes to send (e.g. adds DKIM-Signature)."""

    def sign(self, sender: str, content: bytes) -> bytes:
        """The message to send for envelope sender `sender`; raising defers the attempt."""
        ...


class Unsigned:
    """The signer when nothing signs: the message leaves as it was queued."""

    def sign(self, sender: str, content: bytes) -> bytes:
        return content


UNSIGNED = Unsigned()
