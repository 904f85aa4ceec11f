"""The one result type every message check returns (STYLE.md practice 9, after maddy's
`module.CheckResult`): a verdict, the reply a client sees, the reason the log sees, headers."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.IntEnum):
    """What a check wants done with the message; a larger value wins the merge."""

    ACCEPT = 0      # nothing to say
    TAG = 1         # accept, adding the check's headers (e.g. "scanner unavailable")
    JUNK = 2        # accept into the recipient's Junk folder (the spam check, later)
    TEMPFAIL = 3    # 4xx: the client keeps the message and retries
    REJECT = 4      # 5xx: the client bounces the message


@dataclass(frozen=True)
class CheckResult:
    """One check's decision on one message.

    Attributes:
        check: the check's name for logs and headers ("clamav", later "spf", "dkim", ...).
        verdict: what the check wants done.
        reply: the catalogue reply for TEMPFAIL/REJECT (generic: "policy"); "" otherwise.
        reason: the private reason for the log (e.g. the virus name); never sent to clients.
        headers: complete header lines ("Name: value", no CRLF) to add to the message.
        auth_results: RFC 8601 resinfo pieces ("spf=pass smtp.mailfrom=example.org") for
            the one `Authentication-Results` field the pipeline writes.
    """

    check: str
    verdict: Verdict
    reply: str = ""
    reason: str = ""
    headers: tuple[str, ...] = ()
    auth_results: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        refuses = self.verdict in (Verdict.TEMPFAIL, Verdict.REJECT)
        if refuses != bool(self.reply):
            raise ValueError(f"{self.check}: a {self.verdict.name} result needs a reply "
                             "exactly when it refuses the message")
        if any("\r" in h or "\n" in h or ":" not in h for h in self.headers):
            raise ValueError(f"{self.check}: header lines must be 'Name: value' without CRLF")
        if any("\r" in r or "\n" in r or ";" in r for r in self.auth_results):
            raise ValueError(f"{self.check}: a resinfo is one line without ';'")
