"""Token counts to a spam probability (Robinson's f(w) with Fisher's chi-square combining,
as SpamBayes' `chi2_spamprob`), and the probability to SpamAssassin-style BAYES_* points.
Pure functions: the counts come from `spam.store`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# SpamBayes' defaults, tuned on large corpora (Options.py: unknown_word_strength,
# unknown_word_prob, minimum_prob_strength, max_discriminators).
UNKNOWN_STRENGTH = 0.45     # s: how much weight the prior 0.5 has against n sightings
UNKNOWN_PROB = 0.5          # x: the prior of a token never seen
MIN_STRENGTH = 0.1          # tokens with |f(w) - 0.5| below this say nothing
MAX_CLUES = 150             # only the most extreme tokens are combined


@dataclass(frozen=True)
class Counts:
    """How often a token was seen in learned spam and ham messages."""

    spam: int = 0
    ham: int = 0


@dataclass(frozen=True)
class Model:
    """One model's message totals (how many spam and ham messages it learned)."""

    nspam: int
    nham: int


def token_probability(counts: Counts, model: Model) -> float:
    """Robinson's f(w): the ratio estimate pulled toward `UNKNOWN_PROB` when rare."""
    spam_ratio = counts.spam / model.nspam if model.nspam else 0.0
    ham_ratio = counts.ham / model.nham if model.nham else 0.0
    if spam_ratio + ham_ratio == 0:
        return UNKNOWN_PROB
    p = spam_ratio / (spam_ratio + ham_ratio)
    n = counts.spam + counts.ham
    return (UNKNOWN_STRENGTH * UNKNOWN_PROB + n * p) / (UNKNOWN_STRENGTH + n)


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with `v` (even) degrees of freedom >= `x2`), by the series."""
    m = x2 / 2.0
    term = math.exp(-m)
    total = term
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def clues(counts: Mapping[str, Counts], model: Model) -> list[tuple[float, str]]:
    """The (f(w), token) pairs that take part: strong enough, most extreme first."""
    found = [(token_probability(c, model), token) for token, c in counts.items()]
    strong = [(p, t) for p, t in found if abs(p - 0.5) >= MIN_STRENGTH]
    strong.sort(key=lambda pair: (-abs(pair[0] - 0.5), pair[1]))
    return strong[:MAX_CLUES]


def spam_probability(counts: Mapping[str, Counts], model: Model) -> float:
    """The message's spam probability in [0, 1] from its tokens' counts (0.5: no idea).

    Fisher's method on both hypotheses: H small means many ham clues, S small many spam
    clues; the indicator (S - H + 1) / 2 is near 1 for spam, near 0 for ham, and near 0.5
    when the clues disagree (SpamBayes' "unsure").
    """
    chosen = clues(counts, model)
    if not chosen:
        return 0.5
    ln_h = sum(math.log(p) for p, _ in chosen)
    ln_s = sum(math.log(1.0 - p) for p, _ in chosen)
    n = len(chosen)
    h = 1.0 - chi2q(-2.0 * ln_h, 2 * n)
    s = 1.0 - chi2q(-2.0 * ln_s, 2 * n)
    return (s - h + 1.0) / 2.0


# (rule, lowest probability, points): SpamAssassin's BAYES_* bands (23_bayes.cf) with our
# points, strong enough that a confident classifier alone reaches the default Junk threshold.
BANDS: tuple[tuple[str, float, float], ...] = (
    ("BAYES_999", 0.999, 7.0), ("BAYES_99", 0.99, 5.5), ("BAYES_95", 0.95, 4.0),
    ("BAYES_80", 0.80, 2.5), ("BAYES_60", 0.60, 1.0), ("BAYES_50", 0.40, 0.0),
    ("BAYES_40", 0.20, 0.0), ("BAYES_20", 0.05, -0.5), ("BAYES_05", 0.01, -1.0),
    ("BAYES_00", 0.0, -2.0))


def bayes_rule(probability: float) -> tuple[str, float]:
    """The BAYES_* rule name and points for a spam probability."""
    for rule, lowest, points in BANDS:
        if probability >= lowest:
            return rule, points
    return BANDS[-1][0], BANDS[-1][2]
