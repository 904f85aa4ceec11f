"""Running the message checks on one message and merging their results into one decision.

The merge rule is tiny on purpose: the strongest verdict wins (reject beats tempfail beats
junk beats tag beats accept); the first result with that verdict gives the reply and the
reason; headers of every result are kept, in check order. Checks that authenticate (SPF,
DKIM, ARC, DMARC) return RFC 8601 resinfo pieces that the pipeline writes as one
`Authentication-Results` field under our authserv-id, in front of the other checks' headers.
Each check also gets the message's `MessageContext` (envelope, session, and what the checks
before it found), so the order below matters: the virus scan first (nothing else should
parse a message clamd refuses), then authentication, then the lookups and greylisting that
read its outcome, then the spam score that sums everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from appliance.checks.auth_results import results_header
from appliance.checks.authentication import AuthenticationCheck
from appliance.checks.clamav import ClamavCheck
from appliance.checks.context import MessageContext
from appliance.checks.dnsbl import DnsblCheck
from appliance.checks.greylist import GreylistCheck
from appliance.checks.result import CheckResult, Verdict
from appliance.checks.spam import SpamCheck
from appliance.core import log
from appliance.settings import Settings


class MessageCheck(Protocol):
    """One check on a whole message (the bytes as the client sent them after DATA)."""

    name: str

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
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

    @property
    def auth_results(self) -> tuple[str, ...]:
        """Every result's RFC 8601 resinfo pieces, in check order."""
        return tuple(piece for r in self.results for piece in r.auth_results)

    def header_bytes(self, authserv_id: str | None = None) -> bytes:
        """The header lines to put in front of the message, CRLF-terminated: first the one
        `Authentication-Results` field (when `authserv_id` is given: the MX), then every
        result's own header lines in check order."""
        lines = [h for r in self.results for h in r.headers]
        if authserv_id is not None:
            lines.insert(0, results_header(authserv_id, self.auth_results))
        return b"".join(h.encode("utf-8") + b"\r\n" for h in lines)


def merge(results: Sequence[CheckResult]) -> Decision:
    """Merge check results: the strongest verdict decides, headers of all are kept."""
    deciding: CheckResult | None = None
    for result in results:
        if deciding is None or result.verdict > deciding.verdict:
            deciding = result
    if deciding is None:
        return Decision(Verdict.ACCEPT, "", None, ())
    return Decision(deciding.verdict, deciding.reply, deciding, tuple(results))


async def run_checks(checks: Sequence[MessageCheck], message: bytes,
                     context: MessageContext) -> Decision:
    """Run `checks` one after the other on `message` and merge their results.

    A check that refuses stops the run: later checks could only add headers to a message
    that will not be stored.
    """
    started = time.monotonic()
    results: list[CheckResult] = []
    for check in checks:
        result = await check.check(message, context)
        results.append(result)
        if result.verdict >= Verdict.TEMPFAIL:
            break
    decision = merge(results)
    for notify in context.after_decision:
        try:
            notify(decision.verdict)
        except Exception as exc:       # bookkeeping must never touch the message
            log.error("checks.after_decision_failed", exc, queue_id=context.queue_id)
    elapsed = (time.monotonic() - started) * 1000
    return Decision(decision.verdict, decision.reply, decision.deciding, decision.results,
                    elapsed)


def build_checks(settings: Settings, *, inbound: bool = True) -> tuple[MessageCheck, ...]:
    """The checks the settings turn on, in the order they run (the virus scan first).

    `inbound`: the MX's checks; submission (`inbound=False`) only scans for viruses: its
    sender is our own authenticated user, so authentication and spam checks do not apply.
    """
    checks: list[MessageCheck] = []
    if settings.get_bool("antivirus.enabled"):
        checks.append(ClamavCheck.from_settings(settings))
    if not inbound:
        return tuple(checks)
    if settings.get_bool("checks.authentication"):     # SPF, DKIM, ARC, DMARC
        checks.append(AuthenticationCheck.from_settings(settings))
    # DNS lists and greylisting come after the authentication check: greylisting's bypass
    # reads its outcome (context.auth); the DNS lists add points the spam check sums.
    if settings.get_bool("dnsbl.enabled"):
        checks.append(DnsblCheck.from_settings(settings))
    if settings.get_bool("greylist.enabled"):
        checks.append(GreylistCheck.from_settings(settings))
    if settings.get_bool("spam.enabled"):     # last: it sums the points of those before
        checks.append(SpamCheck.from_settings(settings))
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
