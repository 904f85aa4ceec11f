"""The inbound authentication check ("auth"): SPF, DKIM, ARC and DMARC on one MX message,
their RFC 8601 resinfo pieces, `context.auth` for the checks after it, and the one decision
DMARC asks for.

SPF (checks/spf.py; MAIL FROM, and HELO as a second result), the DKIM key lookups, the ARC
chain (checks/arc.py) and DMARC policy discovery run at the same time; DMARC's verdict then
needs only the SPF and DKIM results.
What decides:

- DMARC fail under p=reject (after pct=): `550 5.7.1` (RFC 7489 6.6.4 / 7.3), under
  p=quarantine: delivered to Junk; p=none: accepted, with spam points.
- Unless the ARC chain passed and its newest sealer is in `checks.arc_trusted_sealers`: a
  forwarder or mailing list we trust vouches for the original authentication (RFC 7489
  10.4 "local policy override", RFC 8617 7.2). Then the message is accepted.
- DMARC temperror (a lookup failed): accepted and tagged, never refused: a broken resolver
  must not bounce mail, and the A-R field records it.
- A p=reject failure whose ARC chain failed only because a seal's key lookup failed:
  `451 4.7.1`, not 550: the chain may be a trusted list's, and the sender retries when DNS
  answers again (a bounce would be permanent for a transient fault).
- An unexpected error inside this check: logged, and the message accepted without
  authentication results (the spam score still applies). Failing closed here would
  bounce all inbound mail on one bug.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Protocol

from appliance.checks import dmarc
from appliance.checks.arc import ArcOutcome, verify_chain
from appliance.checks.auth_dns import TxtLookup
from appliance.checks.context import AuthOutcome, MessageContext
from appliance.checks.dkim_verify import DkimResult, DkimVerifier, is_dns_name
from appliance.checks.result import CheckResult, Verdict
from appliance.checks.spf import SpfChecker, SpfOutcome
from appliance.core import log
from appliance.reports import evaluations
from appliance.settings import Settings
from appliance.smtp import replies

NAME = "auth"
# Points for the spam score (SpamAssassin's scale: Junk at 5) when a failure is not acted
# on otherwise: SPF says the client may not send for the domain, or DMARC fails under
# p=none (or outside pct=).
SCORES = {"SPF_FAIL": 1.0, "SPF_SOFTFAIL": 0.5, "DMARC_FAIL": 2.0}


class SpfSource(Protocol):
    """What the check needs of SPF (checks/spf.py `SpfChecker`)."""

    async def check(self, client_ip: str, helo: str, mail_from: str) -> SpfOutcome:
        ...


def parse_sealers(text: str) -> frozenset[str]:
    """`checks.arc_trusted_sealers`: comma-separated domain names, lower-cased.

    Raises:
        ValueError: an item that is not a domain name.
    """
    names = [item.strip().lower().rstrip(".") for item in text.split(",") if item.strip()]
    for name in names:
        if not is_dns_name(name):
            raise ValueError(f"not a domain name: {name!r}")
    return frozenset(names)


def decide(result: dmarc.DmarcOutcome, arc: ArcOutcome,
           trusted: frozenset[str]) -> tuple[Verdict, str]:
    """The verdict DMARC asks for and the reason for the log."""
    verdict = {"reject": Verdict.REJECT, "quarantine": Verdict.JUNK}.get(
        result.disposition, Verdict.ACCEPT)
    domains = ",".join(r.domain for r in result.results)
    if result.result == "temperror":
        return Verdict.TAG, f"dmarc temperror for {domains}"
    if result.result != "fail":
        return Verdict.ACCEPT, f"dmarc {result.result} for {domains or '-'}"
    reason = f"dmarc fail for {domains} p={result.policy} dis={result.disposition}"
    if verdict > Verdict.ACCEPT and arc.cv == "pass" and arc.sealers \
            and arc.sealers[-1].lower() in trusted:
        return Verdict.ACCEPT, f"{reason}, overridden: ARC sealed by {arc.sealers[-1]}"
    if verdict == Verdict.REJECT and trusted and arc.dns_failed:
        return Verdict.TEMPFAIL, f"{reason}, deferred: ARC key lookup failed ({arc.reason})"
    return verdict, reason


def score_parts(spf: SpfOutcome, result: dmarc.DmarcOutcome) -> list[tuple[str, float]]:
    """Spam points for failures no policy acts on (a DMARC failure whose disposition is
    none: p=none, or outside pct=; a trusted ARC override adds none)."""
    parts: list[tuple[str, float]] = []
    if spf.result in ("fail", "softfail"):
        rule = f"SPF_{spf.result.upper()}"
        parts.append((rule, SCORES[rule]))
    if result.result == "fail" and result.disposition == "none":
        parts.append(("DMARC_FAIL", SCORES["DMARC_FAIL"]))
    return parts


def auth_outcome(spf: SpfOutcome, dkim: Sequence[DkimResult], arc: ArcOutcome,
                 result: dmarc.DmarcOutcome) -> AuthOutcome:
    """The findings later checks read (greylisting's bypass, the spam score)."""
    return AuthOutcome(
        from_domain=result.results[0].domain if result.results else "",
        spf=spf.result, spf_domain=spf.domain,
        dkim_pass=tuple(d.domain for d in dkim if d.result == "pass"),
        arc=arc.cv, arc_sealers=arc.sealers,
        dmarc=result.result, dmarc_policy=result.policy)


class AuthenticationCheck:
    """SPF, DKIM, ARC and DMARC for one inbound message; never raises."""

    name = NAME

    def __init__(self, spf: SpfSource, lookup: TxtLookup, *, max_signatures: int,
                 trusted_sealers: frozenset[str] = frozenset(),
                 rng: random.Random | None = None,
                 recorder: evaluations.EvaluationRecorder | None = None) -> None:
        """`rng` draws pct= samples (seed it in tests); `recorder` keeps the evaluations
        for the aggregate reports we send (reports/evaluations.py), None: not kept."""
        self._spf = spf
        self._lookup = lookup
        self._dkim = DkimVerifier(lookup, max_signatures)
        self._trusted = trusted_sealers
        self._rng = rng or random.Random()
        self._recorder = recorder

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthenticationCheck:
        lookup = TxtLookup(settings.get_str("outbound.resolver"),
                           float(settings.get_int("checks.dns_timeout")))
        return cls(SpfChecker.from_settings(settings), lookup,
                   max_signatures=settings.get_int("checks.dkim_max_signatures"),
                   trusted_sealers=parse_sealers(
                       settings.get_str("checks.arc_trusted_sealers")),
                   recorder=evaluations.EvaluationRecorder(settings.data_dir)
                   if settings.get_bool("reports.send_aggregate") else None)

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
        try:
            return await self._check(message, context)
        except Exception as exc:       # see the module docstring: accept, loudly
            log.error("auth.internal_error", exc, queue_id=context.queue_id)
            return CheckResult(NAME, Verdict.TAG, reason=f"internal error: {exc}"[:200])

    async def _check(self, message: bytes, context: MessageContext) -> CheckResult:
        spf, helo, dkim, arc, policies = await asyncio.gather(
            self._spf.check(context.client_ip, context.helo, context.mail_from),
            self._helo_spf(context), self._dkim.verify(message),
            self._arc(message, context.client_ip),
            dmarc.find_policies(message, self._lookup.txt))
        ids = dmarc.identifiers(spf.result, spf.domain,
                                [(d.result, d.domain) for d in dkim if d.domain])
        result = dmarc.outcome(policies, ids, self._rng)
        context.auth = auth_outcome(spf, dkim, arc, result)
        verdict, reason = decide(result, arc, self._trusted)
        context.score_parts.extend(score_parts(spf, result))
        if self._recorder is not None:     # counted once the other checks decided too
            message_facts = evaluations.Message(context.client_ip, context.mail_from, spf,
                                                dkim, verdict, reason)
            context.after_decision.append(
                lambda final: self._record(policies, result, message_facts, final))
        pieces = (spf.resinfo, *([helo.resinfo] if helo else []), *(d.resinfo for d in dkim),
                  arc.resinfo, *result.resinfo)
        level = logging.DEBUG if verdict == Verdict.ACCEPT else logging.INFO
        log.event("auth.checked", level, queue_id=context.queue_id, spf=spf.result,
                  dkim=",".join(d.result for d in dkim), arc=arc.cv, dmarc=result.result,
                  verdict=verdict.name.lower(), reason=reason)
        reply = {Verdict.REJECT: replies.DMARC_REJECTED,
                 Verdict.TEMPFAIL: replies.POLICY_DEFERRED}.get(verdict, "")
        return CheckResult(NAME, verdict, reply, reason, auth_results=pieces)

    async def _helo_spf(self, context: MessageContext) -> SpfOutcome | None:
        """SPF for the HELO identity too (RFC 7208 2.3 recommends it), reported as its own
        `spf=... smtp.helo=` result; DMARC keeps using the MAIL FROM result. For the null
        sender the MAIL FROM check already is the HELO check; an address literal or a
        dotless name has no SPF record to ask for."""
        name = context.helo.rstrip(".")
        if not context.mail_from or "." not in name or name.startswith("[") \
                or not is_dns_name(name.lower()):
            return None
        return await self._spf.check(context.client_ip, name, "")

    def _record(self, policies: dmarc.Policies, result: dmarc.DmarcOutcome,
                message: evaluations.Message, final: Verdict) -> None:
        """Keep the evaluation for our aggregate reports (RFC 7489 7.2): an append to a
        batch written in a thread; a failure here must not touch the message. Not for a
        message the checks deferred (greylisting, a scanner down): its retry counts."""
        if self._recorder is None or final == Verdict.TEMPFAIL:
            return
        try:
            self._recorder.record(evaluations.from_check(policies, result, message,
                                                         time.time()))
        except Exception as exc:
            log.error("auth.record_failed", exc)

    async def _arc(self, message: bytes, client_ip: str) -> ArcOutcome:
        """The ARC chain, validated in a worker thread (dkimpy is blocking) with lookups to
        our resolver, all of them within twice the lookup timeout."""
        dnsfunc = self._lookup.blocking(budget=2 * self._lookup.timeout)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: verify_chain(
            message, dnsfunc, remote_ip=client_ip))
