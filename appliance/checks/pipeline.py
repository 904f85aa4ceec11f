"""Running the message checks on one message and merging their results into one decision.

The merge rule is tiny on purpose: the strongest verdict wins (reject beats tempfail beats
junk beats tag beats accept); the first result with that verdict gives the reply and the
reason; headers of every result are kept, in check order. Later checks plug in here:
SPF (RFC 7208) and DKIM (RFC 6376) will return ACCEPT with their part of one
`Authentication-Results` header (RFC 8601) that the pipeline then writes as a single field;
DMARC (RFC 7489) will REJECT `p=reject` failures and send `quarantine` to JUNK; the spam
score will add `X-Spam-*` headers, JUNK above one threshold and REJECT above another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from appliance.checks.clamav import ClamavCheck
from appliance.checks.result import CheckResult, Verdict
from appliance.core import log
from appliance.settings import Settings


class MessageCheck(Protocol):
    """One check on a whole message (the bytes as the client sent them after DATA)."""

    name: str

    async def check(self, message: bytes) -> CheckResult:
        """Return the check's result; never raise for anything the message contains."""
        ...


@dataclass(frozen=True)
class Decision:
    """The merged outcome: the deciding result, and every result for the log."""

    verdict: Verdict
    reply: str
    deciding: CheckResult | None
    results: tuple[CheckResult, ...]
    elapsed_ms: float = 0.0

    @property
    def refused(self) -> bool:
        return self.verdict in (Verdict.TEMPFAIL, Verdict.REJECT)

    def header_bytes(self) -> bytes:
        """Every result's header lines, CRLF-terminated, to put in front of the message."""
        return b"".join(h.encode("utf-8") + b"\r\n" for r in self.results for h in r.headers)


def merge(results: Sequence[CheckResult]) -> Decision:
    """Merge check results: the strongest verdict decides, headers of all are kept."""
    deciding: CheckResult | None = None
    for result in results:
        if deciding is None or result.verdict > deciding.verdict:
            deciding = result
    if deciding is None:
        return Decision(Verdict.ACCEPT, "", None, ())
    return Decision(deciding.verdict, deciding.reply, deciding, tuple(results))


async def run_checks(checks: Sequence[MessageCheck], message: bytes) -> Decision:
    """Run `checks` one after the other on `message` and merge their results.

    A check that refuses stops the run: later checks could only add headers to a message
    that will not be stored.
    """
    started = time.monotonic()
    results: list[CheckResult] = []
    for check in checks:
        result = await check.check(message)
        results.append(result)
        if result.verdict >= Verdict.TEMPFAIL:
            break
    decision = merge(results)
    elapsed = (time.monotonic() - started) * 1000
    return Decision(decision.verdict, decision.reply, decision.deciding, decision.results,
                    elapsed)


def build_checks(settings: Settings) -> tuple[MessageCheck, ...]:
    """The checks the settings turn on, in the order they run (the virus scan first)."""
    checks: list[MessageCheck] = []
    if settings.get_bool("antivirus.enabled"):
        checks.append(ClamavCheck.from_settings(settings))
    return tuple(checks)


def log_checks(prefix: str, decision: Decision, queue_id: str, client: str) -> None:
    """Log one line for the decision: refusals and tags at info (with the deciding check's
    private reason, e.g. the virus name), plain accepts at debug."""
    deciding = decision.deciding
    if deciding is None:
        return
    if decision.refused:
        name, level = f"{prefix}.message_refused", logging.INFO
    elif decision.verdict > Verdict.ACCEPT:
        name, level = f"{prefix}.message_tagged", logging.INFO
    else:
        name, level = f"{prefix}.message_checked", logging.DEBUG
    log.event(name, level, queue_id=queue_id, client=client, check=deciding.check,
              verdict=decision.verdict.name.lower(), reason=deciding.reason,
              reply=decision.reply[:9], elapsed_ms=round(decision.elapsed_ms, 1))
