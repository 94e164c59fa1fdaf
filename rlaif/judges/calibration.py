"""Position-bias calibration and the consistency self-check for pairwise judges.

Why: small judges prefer a position. SmolLM2-135M with the plain A/B prompt names the first response
for nearly every pair, so averaging the two orders' probabilities gives ~0.5 for everything and the
two orders never agree. In logit space a constant first-position bias ``b`` is additive:
``logit P_AB(first) = s + b`` and ``logit P_BA(first) = -s + b`` for a pair whose true preference
strength for response a is ``s``. Hence:

- with both orders readable, ``(logit_AB - logit_BA) / 2 = s``: the bias cancels per pair;
- for one readable order, ``b`` is estimated on the batch as the mean first-position logit over all
  readable orders (the shown order of a and b is balanced by construction when both orders are judged,
  and randomised by ``rlaif judge-eval``), and subtracted.

The self-check asks whether the calibrated judge is any better than a coin: for pairs with both
orders readable, do the two orders (after subtracting ``b``) prefer the same response? A judge with
no signal agrees with itself about half the time; one that only follows position agrees never. If
the 95% Wilson interval of that rate does not lie above 0.5, the batch's labels are refused.

Guarantees: pure functions of the per-order first-position probabilities; probabilities are clipped
to [1e-4, 1 - 1e-4] before the logit so text-only (0/1) judgments stay finite. Non-guarantee: the
bias model is one constant per batch; a bias that depends on the content (longer first response,
say) is not removed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EPS = 1e-4
SELF_CHECK_MODES = ("off", "refuse", "error")
MIN_SELF_CHECK_PAIRS = 20


def logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """95% Wilson score interval for a rate (None for n = 0).

    >>> [round(x, 3) for x in wilson_interval(80, 100)]
    [0.711, 0.867]
    """
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def first_position_bias(p_first_per_order: Sequence[Sequence[float | None]]) -> float | None:
    """Mean first-position logit over every readable order of every item (None if none is readable).

    >>> round(first_position_bias([[0.9, 0.8], [0.7, None]]), 3)
    1.477
    """
    values = [logit(p) for orders in p_first_per_order for p in orders if p is not None]
    return sum(values) / len(values) if values else None


@dataclass
class CalibratedPair:
    """P(response_a better) after removing the bias, per order and combined; order agreement."""

    prob_a: float | None
    per_order_prob_a: list[float | None]
    consistent: bool | None


def calibrate_pair(
    p_first: Sequence[float | None], orders: Sequence[str], bias: float | None
) -> CalibratedPair:
    """Debias one item's orders (``orders[k]`` is "AB" or "BA"; ``p_first[k]`` P(first shown better)).

    >>> c = calibrate_pair([0.9, 0.8], ["AB", "BA"], bias=1.5)   # both say "first": bias, little signal
    >>> round(c.prob_a, 3), c.consistent
    (0.6, True)
    >>> calibrate_pair([None, None], ["AB", "BA"], bias=0.0).prob_a is None
    True
    """
    b = bias or 0.0
    signed: list[float | None] = []  # debiased logit of P(a better), per order
    for p, order in zip(p_first, orders, strict=True):
        if p is None:
            signed.append(None)
            continue
        x = logit(p) - b
        signed.append(x if order == "AB" else -x)
    readable = [x for x in signed if x is not None]
    if not readable:
        return CalibratedPair(None, [None] * len(signed), None)
    combined = sigmoid(sum(readable) / len(readable))
    consistent = None
    if len(readable) >= 2:
        consistent = len({x > 0 for x in readable}) == 1 and all(x != 0 for x in readable)
    return CalibratedPair(combined, [None if x is None else sigmoid(x) for x in signed], consistent)


@dataclass
class SelfCheck:
    """Whether a batch's calibrated order agreement is above chance."""

    pairs: int
    consistent: int
    rate: float | None
    interval: tuple[float, float] | None
    bias_logit: float | None
    passed: bool | None  # None: too few pairs with both orders to tell

    @property
    def reason(self) -> str:
        lo, hi = self.interval or (float("nan"), float("nan"))
        return (
            f"self-check: calibrated position consistency {self.consistent}/{self.pairs} "
            f"(95% CI {lo:.2f}-{hi:.2f}) is not above chance (0.5); the judge's labels carry no "
            "reliable signal on this batch"
        )

    def as_dict(self) -> dict:
        return {
            "pairs_with_both_orders": self.pairs,
            "consistent": self.consistent,
            "rate": None if self.rate is None else round(self.rate, 6),
            "ci95": None if self.interval is None else [round(x, 6) for x in self.interval],
            "first_position_bias_logit": None if self.bias_logit is None else round(self.bias_logit, 6),
            "passed": self.passed,
        }


def self_check(
    consistency: Sequence[bool | None], bias: float | None, min_pairs: int = MIN_SELF_CHECK_PAIRS
) -> SelfCheck:
    """Above chance means the Wilson interval's lower end is above 0.5.

    >>> self_check([True] * 30 + [False] * 10, 0.0).passed
    True
    >>> self_check([True] * 20 + [False] * 20, 0.0).passed
    False
    >>> self_check([True] * 5, 0.0).passed is None
    True
    """
    known = [c for c in consistency if c is not None]
    n, k = len(known), sum(1 for c in known if c)
    interval = wilson_interval(k, n)
    passed = None if n < min_pairs else bool(interval and interval[0] > 0.5)
    return SelfCheck(n, k, k / n if n else None, interval, bias, passed)
