"""Pair building and filtering shared by every feedback source.

Why length control matters: a judge that likes long answers teaches the policy to ramble (Self-Rewarding
answers grew ~2x longer over three rounds). So every run reports the chosen/rejected length ratio, and
offers two remedies: a ``max_length_ratio`` filter (drop pairs whose chosen answer is more than that many
times longer than the rejected one), and ``length_matched`` pairing (pick the best/worst pair whose
lengths are closest, instead of plain max vs min). The opposite failure, a chosen stub ("Sure.", a bare
title) preferred to an answer, has ``min_length_ratio``.

Guarantees:
- nothing is dropped without a reason: :func:`filter_pairs` returns the kept pairs and the dropped ones
  with their reason, and :class:`PairStats` counts drops by reason;
- selection is deterministic: ties in score are broken by candidate index (lowest first);
- a tie between best and worst (no score difference) never becomes a pair.

Lengths are measured in characters (tokenizer-free, so identical across models).
Non-guarantee: de-duplication is exact (same prompt, chosen and rejected text), not fuzzy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from rlaif.records import PreferencePair, stable_hash


class PairStats(BaseModel):
    """Counts for one source run.

    ``drops`` are per-prompt outcomes (they add up with ``pairs_out`` to ``prompts_in``); ``counters``
    are everything else worth reporting (retries, invalid judgments, excluded candidates, ...).
    ``length`` is :func:`length_summary` of the pairs kept.
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    prompts_in: int = 0
    pairs_out: int = 0
    drops: dict[str, int] = Field(default_factory=dict)
    counters: dict[str, int] = Field(default_factory=dict)
    length: dict[str, float | None] = Field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def add_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def balanced(self) -> bool:
        """True when every prompt is accounted for (one pair or one drop)."""
        return self.pairs_out + self.dropped == self.prompts_in

    def merge(self, other: PairStats) -> PairStats:
        """The counts of two runs of one source (e.g. two chunks); ``length`` is left for the caller to
        compute over all pairs, since a mean of means would weight chunks wrongly."""
        return merge_counts([self, other])


M = TypeVar("M", bound=BaseModel)


def merge_counts(parts: Sequence[M]) -> M:
    """Sum count models field by field: integers add, ``dict[str, int]`` fields and ``seconds`` (time
    spent per step) add key-wise; any other field (a name, float summaries such as ``length``) is taken
    from the first part, except ``length``, which is reset (recompute it over the merged pairs). Used
    for chunk stats of every source."""
    if not parts:
        raise ValueError("merge_counts needs at least one part")
    first = parts[0]
    merged: dict = {}
    for name, value in first:
        if name == "length":
            merged[name] = {}
        elif isinstance(value, int) and not isinstance(value, bool):
            merged[name] = sum(getattr(p, name) for p in parts)
        elif isinstance(value, dict) and all(
            isinstance(v, int) or (name == "seconds" and isinstance(v, float))
            for p in parts
            for v in getattr(p, name).values()
        ):
            total: dict[str, int | float] = {}
            for p in parts:
                for key, n in getattr(p, name).items():
                    total[key] = total.get(key, 0) + n
            merged[name] = total
        else:
            merged[name] = value
    return type(first).model_validate(merged)


class PairFilterConfig(BaseModel):
    """Filters applied to pairs; a run sets them in one place, ``pairs.options`` (the pairs stage)."""

    model_config = ConfigDict(extra="forbid")

    min_margin: float | None = Field(
        None,
        description="Drop pairs whose margin (score difference that ordered them) is below this. Pairs "
        "without a margin (e.g. RLCD without rescoring, ordered by construction) are not affected.",
    )
    dedup: bool = Field(True, description="Drop exact duplicates (same prompt, chosen and rejected).")
    drop_identical: bool = Field(True, description="Drop pairs whose chosen and rejected texts are equal.")
    max_length_ratio: float | None = Field(
        None,
        gt=1.0,
        description="Drop pairs whose chosen text is more than this many times longer (characters) than "
        "the rejected one; counters a judge's preference for long answers.",
    )
    min_length_ratio: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Drop pairs whose chosen text is shorter than this fraction (characters) of the "
        "rejected one; counters a reviser or judge that prefers a stub ('Sure.', a bare title) to an answer.",
    )
    require_consistent_order: bool = Field(
        False,
        description="Drop pairs whose pairwise AI label flips when the two answers swap places (the "
        "source recorded consistent: false, e.g. RL-CAI, RLCD rescoring); such labels follow the "
        "position, not the answers. Pairs judged in one order, or not by a pairwise judge, are kept.",
    )


def length_ratio(chosen: str, rejected: str) -> float:
    """len(chosen) / len(rejected) in characters (an empty rejected text counts as one character)."""
    return len(chosen) / max(len(rejected), 1)


def length_summary(pairs: Sequence[PreferencePair]) -> dict[str, float | None]:
    """How much longer the chosen answers are than the rejected ones."""
    if not pairs:
        return {"n": 0, "mean_chosen_chars": None, "mean_rejected_chars": None, "mean_ratio": None,
                "ratio_of_means": None, "frac_chosen_longer": None}  # fmt: skip
    chosen = [len(p.chosen) for p in pairs]
    rejected = [len(p.rejected) for p in pairs]
    ratios = [length_ratio(p.chosen, p.rejected) for p in pairs]
    return {
        "n": len(pairs),
        "mean_chosen_chars": sum(chosen) / len(pairs),
        "mean_rejected_chars": sum(rejected) / len(pairs),
        "mean_ratio": sum(ratios) / len(ratios),
        "ratio_of_means": (sum(chosen) / len(pairs)) / max(sum(rejected) / len(pairs), 1.0),
        "frac_chosen_longer": sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs),
    }


def pair_key(pair: PreferencePair) -> str:
    """Identity for de-duplication: the prompt conversation and both texts."""
    prompt = json.dumps([m.model_dump() for m in pair.prompt], ensure_ascii=False, sort_keys=True)
    return stable_hash(prompt, pair.chosen, pair.rejected)


def filter_pairs(
    pairs: Iterable[PreferencePair], config: PairFilterConfig
) -> tuple[list[PreferencePair], list[tuple[PreferencePair, str]]]:
    """Apply the filters in a fixed order (identical, position-inconsistent label, margin, length ratio
    above, then below, duplicate); returns the kept pairs and each dropped pair with its reason."""
    kept: list[PreferencePair] = []
    dropped: list[tuple[PreferencePair, str]] = []
    seen: set[str] = set()
    for pair in pairs:
        reason = None
        if config.drop_identical and pair.chosen.strip() == pair.rejected.strip():
            reason = "identical"
        elif config.require_consistent_order and pair.metadata.get("consistent") is False:
            reason = "position_inconsistent"
        elif config.min_margin is not None and pair.margin is not None and pair.margin < config.min_margin:
            reason = "below_min_margin"
        elif (
            config.max_length_ratio is not None
            and length_ratio(pair.chosen, pair.rejected) > config.max_length_ratio
        ):
            reason = "length_ratio"
        elif (
            config.min_length_ratio is not None
            and length_ratio(pair.chosen, pair.rejected) < config.min_length_ratio
        ):
            reason = "chosen_too_short"
        elif config.dedup:
            key = pair_key(pair)
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        if reason is None:
            kept.append(pair)
        else:
            dropped.append((pair, reason))
    return kept, dropped


@dataclass(frozen=True)
class Selection:
    """The outcome of picking a pair among scored candidates: indices (or None) and the reason."""

    chosen: int | None
    rejected: int | None
    margin: float | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.chosen is not None


Pairing = Literal["max_min", "length_matched"]


def select_pair(
    texts: Sequence[str],
    scores: Sequence[float | None],
    *,
    min_margin: float = 0.0,
    max_length_ratio: float | None = None,
    min_length_ratio: float | None = None,
    pairing: Pairing = "max_min",
) -> Selection:
    """Pick chosen/rejected among candidates scored by a judge (None = no valid score: excluded).

    ``max_min``: the highest against the lowest score (lowest index among equal scores); a tie or a
    margin below ``min_margin`` drops the prompt; so does a length ratio (chosen / rejected characters)
    above ``max_length_ratio`` or below ``min_length_ratio``.
    ``length_matched``: among all pairs with a positive margin >= ``min_margin`` (and a length ratio
    within the bounds), the one whose lengths are closest (|log ratio|), then the larger margin; so a
    bound skips to the next pair rather than dropping the prompt, as the pairs stage's filter would.
    Drop reasons: ``too_few_scored``, ``tie``, ``below_min_margin``, ``length_ratio``.
    """
    valid = [i for i, s in enumerate(scores) if s is not None]
    if len(valid) < 2:
        return Selection(None, None, None, "too_few_scored")
    best = max(valid, key=lambda i: (scores[i], -i))
    worst = min(valid, key=lambda i: (scores[i], i))
    if scores[best] == scores[worst]:
        return Selection(None, None, 0.0, "tie")
    top_margin = scores[best] - scores[worst]
    if top_margin < min_margin:
        return Selection(None, None, top_margin, "below_min_margin")

    def ratio_ok(i: int, j: int) -> bool:
        ratio = length_ratio(texts[i], texts[j])
        too_long = max_length_ratio is not None and ratio > max_length_ratio
        return not too_long and (min_length_ratio is None or ratio >= min_length_ratio)

    if pairing == "max_min":
        if not ratio_ok(best, worst):
            return Selection(None, None, top_margin, "length_ratio")
        return Selection(best, worst, top_margin)

    options = []
    for i in valid:
        for j in valid:
            margin = scores[i] - scores[j]
            if margin > 0 and margin >= min_margin and ratio_ok(i, j):
                closeness = abs(math.log(max(len(texts[i]), 1) / max(len(texts[j]), 1)))
                options.append((closeness, -margin, i, j))
    if not options:
        return Selection(None, None, top_margin, "length_ratio")
    _, neg_margin, i, j = min(options)
    return Selection(i, j, -neg_margin)


def per_source_stats(pairs: Iterable[PreferencePair]) -> dict[str, dict[str, float | None]]:
    """Pair counts, margins and length bias per source, for a file that mixes sources."""
    by_source: dict[str, list[PreferencePair]] = {}
    for p in pairs:
        by_source.setdefault(p.source, []).append(p)
    out = {}
    for source, group in sorted(by_source.items()):
        margins = [p.margin for p in group if p.margin is not None]
        labels = [p.soft_label for p in group if p.soft_label is not None]
        out[source] = {
            "pairs": len(group),
            "mean_margin": sum(margins) / len(margins) if margins else None,
            "mean_soft_label": sum(labels) / len(labels) if labels else None,
            **{f"length_{k}": v for k, v in length_summary(group).items() if k != "n"},
        }
    return out
