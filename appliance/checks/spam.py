"""The spam score: the points other checks left in `MessageContext.score_parts` (DNSBL
hits, SPF/DMARC failures, ...) plus the learning classifier's BAYES_* points; adds
SpamAssassin-style `X-Spam-Score`/`X-Spam-Status` headers and decides Junk or reject.

Which model scores a message: the message is stored once for all its recipients, so its
headers and its folder are one decision. When it goes to exactly one local mailbox and that
account's own model has learned enough (`spam.min_spam` spam and `spam.min_ham` ham), the
account's model scores it; otherwise (several recipients, a young model) the global model
does, if it has learned enough; else the classifier adds nothing. The classifier failing
(a broken database) fails open: spam filtering is not mail safety.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.checks.context import MessageContext
from appliance.checks.result import CheckResult, Verdict
from appliance.core import log
from appliance.settings import Settings
from appliance.smtp import replies
from appliance.spam.classifier import Model, bayes_rule, spam_probability
from appliance.spam.store import GLOBAL, TokenStore, db_path
from appliance.spam.tokenizer import TokenLimits, tokenize

NAME = "spam"
RULE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
MAX_RULES = 20           # rules named in the headers, each at most MAX_RULE_NAME long: a
MAX_RULE_NAME = 30       # header line stays under RFC 5322's 998 octets
SCORE_LIMIT = 1000.0     # thresholds beyond this are typos


def parse_score(text: str) -> float:
    """A threshold setting's value ("5.0").

    Raises:
        ValueError: not a finite number within +-`SCORE_LIMIT`.
    """
    value = float(text)
    if not math.isfinite(value) or abs(value) > SCORE_LIMIT:
        raise ValueError(f"not a score between -{SCORE_LIMIT:g} and {SCORE_LIMIT:g}: {text!r}")
    return value


@dataclass(frozen=True)
class Classification:
    """The classifier's opinion: which model, the probability, the BAYES_* rule."""

    model: str             # "account" or "global"
    probability: float
    rule: str
    points: float


@dataclass(frozen=True)
class SpamPolicy:
    junk_threshold: float = 5.0
    reject_threshold: float = 15.0
    min_spam: int = 50
    min_ham: int = 50

    def ready(self, model: Model) -> bool:
        return model.nspam >= self.min_spam and model.nham >= self.min_ham


def model_account(mailboxes: Sequence[str]) -> str | None:
    """The one account whose own model may score the message (None: use the global one)."""
    distinct = set(mailboxes)          # directory addresses, as the trainer names them
    return distinct.pop() if len(distinct) == 1 else None


def classify(tokens: TokenStore, policy: SpamPolicy, found: frozenset[str],
             mailboxes: Sequence[str]) -> Classification | None:
    """Score `found` with the account's model when it may and is ready, else the global
    model when ready, else None (blocking: SQLite)."""
    account = model_account(mailboxes)
    choices = ([(account, "account")] if account else []) + [(GLOBAL, "global")]
    for name, label in choices:
        if not policy.ready(tokens.model(name)):
            continue
        model, counts = tokens.lookup(name, found)
        if policy.ready(model):
            probability = spam_probability(counts, model)
            return Classification(label, probability, *bayes_rule(probability))
    return None


def decide(parts: Sequence[tuple[str, float]], bayes: Classification | None,
           policy: SpamPolicy, reason_prefix: str = "") -> CheckResult:
    """The result for these score parts (pure): headers, verdict, reason."""
    rules = [] if bayes is None else [(bayes.rule, bayes.points)]
    rules += [(RULE_NAME.sub("_", rule)[:MAX_RULE_NAME] or "UNNAMED", points)
              for rule, points in parts]
    score = round(sum(points for _, points in rules), 1) + 0.0     # no "-0.0"
    names = ",".join(rule for rule, _ in rules[:MAX_RULES]) or "none"
    spam = score >= policy.junk_threshold
    report = " ".join(f"{rule}={points:g}" for rule, points in rules[:MAX_RULES])
    if bayes is not None:
        report += f" ({bayes.model} model, p={bayes.probability:.4f})"
    headers = (f"X-Spam-Score: {score:.1f}",
               f"X-Spam-Status: {'Yes' if spam else 'No'}, score={score:.1f} "
               f"required={policy.junk_threshold:.1f} tests={names}",
               f"X-Spam-Report: {report or 'no tests'}")
    reason = f"{reason_prefix}score {score:.1f}: {report or 'no tests'}"
    if score >= policy.reject_threshold:
        return CheckResult(NAME, Verdict.REJECT, replies.SPAM_REJECTED, reason, headers)
    return CheckResult(NAME, Verdict.JUNK if spam else Verdict.ACCEPT, "", reason, headers)


class SpamCheck:
    """Sum the score parts and the classifier's points; Junk or reject above thresholds."""

    name = NAME

    def __init__(self, path: Path, policy: SpamPolicy, limits: TokenLimits) -> None:
        self._path = path
        self._policy = policy
        self._limits = limits
        self._tokens: TokenStore | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SpamCheck:
        policy = SpamPolicy(parse_score(settings.get_str("spam.junk_threshold")),
                            parse_score(settings.get_str("spam.reject_threshold")),
                            settings.get_int("spam.min_spam"), settings.get_int("spam.min_ham"))
        return cls(db_path(settings.data_dir), policy, TokenLimits.from_settings(settings))

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
        loop = asyncio.get_running_loop()
        prefix = ""
        try:
            bayes = await loop.run_in_executor(None, self._classify, message, context.mailboxes)
        except Exception as exc:      # the database is broken or gone: score without it
            log.error("spam.classifier_failed", exc, queue_id=context.queue_id)
            bayes, prefix = None, "classifier unavailable; "
        return decide(context.score_parts, bayes, self._policy, prefix)

    def _classify(self, message: bytes, mailboxes: Sequence[str]) -> Classification | None:
        found = tokenize(message, self._limits)
        return classify(self._store(), self._policy, found, mailboxes)

    def _store(self) -> TokenStore:
        """Opened on first use, so a broken database fails the check, not the start-up."""
        with self._lock:
            if self._tokens is None:
                self._tokens = TokenStore(self._path)
            return self._tokens

    def close(self) -> None:
        with self._lock:
            if self._tokens is not None:
                self._tokens.close()
                self._tokens = None
