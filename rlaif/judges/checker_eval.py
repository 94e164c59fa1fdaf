"""Run any built judge on instruction candidates and measure its agreement with the checker.

A score judge scores every candidate alone and is right on a labelled pair when the following reply
scores higher; a compare judge (pairwise, principle) judges every labelled pair (in both orders when it
does so), the two replies put in a random order drawn from ``seed`` so a position-biased judge is not
flattered, and its position consistency is reported.

Guarantees: one ``score`` or one ``compare`` call for the whole set (the engine batches it); the order
plan depends only on the pairs and ``seed``; every labelled pair gets exactly one outcome (right,
wrong, tied or invalid), summarised by :func:`rlaif.judges.checker_pairs.judge_summary`.
Non-guarantee: a judge's figure is for these candidates (one policy's replies); another policy's
replies may be easier or harder to tell apart.
"""

from __future__ import annotations

import itertools
import random

from rlaif.judges.checker_pairs import follows, judge_summary, labelled, picks


def score_candidates(judge, pairs) -> list[list[float | None]]:
    """Every candidate scored alone, in one ``score`` call; None where the judgment is invalid."""
    items, owners = [], []
    for row, pair in enumerate(pairs):
        for j, text in enumerate(_texts(pair)):
            items.append((pair.prompt, text))
            owners.append((row, j))
    scores: list[list[float | None]] = [[] for _ in pairs]
    results = judge.score(items, ids=[f"{row}:{j}" for row, j in owners])
    for (row, _), result in zip(owners, results, strict=True):
        scores[row].append(result.mean_score)
    return scores


def score_outcomes(pairs, scores) -> tuple[dict[str, str], dict[str, bool]]:
    """Per labelled pair: the score judge's outcome, and whether the following reply is the shorter."""
    outcome: dict[str, str] = {}
    shorter: dict[str, bool] = {}
    for row, (pair, s) in enumerate(zip(pairs, scores, strict=True)):
        texts = _texts(pair)
        for good, bad in labelled(follows(pair)):
            key = f"{row}:{good}>{bad}"
            outcome[key] = _outcome(s[good], s[bad])
            shorter[key] = len(texts[good]) < len(texts[bad])
    return outcome, shorter


def _outcome(good: float | None, bad: float | None) -> str:
    if good is None or bad is None:
        return "invalid"
    return "tied" if good == bad else "right" if good > bad else "wrong"


def compare_plan(pairs, seed: int) -> list[tuple[int, int, int]]:
    """(row, shown as response_a, shown as response_b) for every labelled pair, the two replies put in
    an order drawn from ``seed`` (so the following reply is first about half the time)."""
    rng, plan = random.Random(seed), []
    for row, pair in enumerate(pairs):
        ok = follows(pair)
        for a, b in itertools.combinations(range(len(ok)), 2):
            if ok[a] == ok[b]:
                continue
            if rng.random() < 0.5:
                a, b = b, a
            plan.append((row, a, b))
    return plan


def compare_outcomes(judge, pairs, seed: int) -> tuple[dict[str, str], dict[str, bool], list[bool | None]]:
    """Per labelled pair: the compare judge's outcome, prefer-shorter's, and the position consistency
    of each judged pair (None where fewer than two orders could be read)."""
    plan = compare_plan(pairs, seed)
    items = [(pairs[r].prompt, _texts(pairs[r])[a], _texts(pairs[r])[b]) for r, a, b in plan]
    results = judge.compare(items, ids=[f"{r}:{a}:{b}" for r, a, b in plan]) if plan else []
    oks = [follows(pair) for pair in pairs]
    outcome: dict[str, str] = {}
    shorter: dict[str, bool] = {}
    for (row, a, b), result in zip(plan, results, strict=True):
        a_follows = oks[row][a]
        good, bad = (a, b) if a_follows else (b, a)
        key = f"{row}:{good}>{bad}"
        p = result.prob_a
        if p is None:
            outcome[key] = "invalid"
        else:
            outcome[key] = "tied" if p == 0.5 else "right" if (p > 0.5) == a_follows else "wrong"
        shorter[key] = len(_texts(pairs[row])[good]) < len(_texts(pairs[row])[bad])
    return outcome, shorter, [r.consistent for r in results]


def _texts(pair) -> list[str]:
    return pair.metadata["candidates"]["texts"]


def measure_judge(judge, pairs, seed: int) -> dict:
    """A built judge's agreement with the checker on the pairs' candidates (see the module docstring)."""
    if judge.slot == "score":
        scores = score_candidates(judge, pairs)
        outcome, shorter = score_outcomes(pairs, scores)
        valid = sum(v is not None for s in scores for v in s)
        return {
            "candidates_scored": f"{valid}/{sum(map(len, scores))}",
            **judge_summary(outcome, shorter),
            "prompts": len(pairs),
            **picks(pairs, scores),
        }
    outcome, shorter, consistent = compare_outcomes(judge, pairs, seed)
    both = [c for c in consistent if c is not None]
    return {
        **judge_summary(outcome, shorter),
        "position_consistency": {
            "consistent": sum(both),
            "both_orders_read": len(both),
            "rate": round(sum(both) / len(both), 4) if both else None,
        },
        "prompts": len(pairs),
    }
