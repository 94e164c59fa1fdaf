"""Log-probability contrast: how much more likely a reply is under one context than under another.

    contrast(y) = mean over y's tokens of log p(token | positive context)
                - mean over y's tokens of log p(token | negative context)

The one place this is computed: the contrastive-likelihood judge (two system prompts), the
instruction-likelihood judge and instruction-contrast's candidate choice (request with and without
its instruction) all call :func:`log_prob_contrasts`. Why a difference of means: the model only
reads the reply twice, so its fluency, length and topic cancel and what the contexts change is left.

Guarantees: one ``score_continuations`` call for every item of a batch (both contexts of each,
positive first); an item whose reply does not fit a context is ``invalid="too_long"`` and an item
whose reply has no token is ``invalid="empty"``, never a made-up value; an engine without the
scoring capability is the engine's "cannot score" error. Non-guarantee: the value is a
log-likelihood ratio whose scale depends on the model and the contexts; compare within one caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rlaif.engines.base import PromptInput, score_continuations


@dataclass(frozen=True)
class Contrast:
    """One item's contrast; ``value`` is None exactly when ``invalid`` says why."""

    value: float | None
    mean_positive: float | None = None
    mean_negative: float | None = None
    tokens: int = 0
    invalid: Literal["too_long", "empty"] | None = None


def contrast_of(positive: list[float] | None, negative: list[float] | None) -> Contrast:
    """The contrast of one reply's per-token log-probabilities under the two contexts."""
    if positive is None or negative is None:
        return Contrast(value=None, invalid="too_long")
    if not positive or not negative:
        return Contrast(value=None, invalid="empty")
    mean_pos, mean_neg = sum(positive) / len(positive), sum(negative) / len(negative)
    return Contrast(mean_pos - mean_neg, mean_pos, mean_neg, tokens=len(positive))


def log_prob_contrasts(
    engine: Any,
    items: Sequence[tuple[PromptInput, PromptInput, str]],
    adapter: str | None = None,
) -> list[Contrast]:
    """The contrast of each ``(positive context, negative context, reply)``, in input order."""
    prompts = [context for pos, neg, _ in items for context in (pos, neg)]
    replies = [reply for _, _, reply in items for _ in range(2)]
    scores = score_continuations(engine, prompts, replies, adapter=adapter)
    return [contrast_of(scores[2 * i], scores[2 * i + 1]) for i in range(len(items))]


__all__ = ["Contrast", "contrast_of", "log_prob_contrasts"]
