"""The instruction checker as the label: labelled pairs among a prompt's candidates, and the agreement
statistics of a judge (or of the stored contrast) with it, against "prefer the shorter reply".

Why here: measuring a judge on instructions whose following can be checked by a program needs no
human labels; the same arithmetic serves every judge, so it lives once in the library
(``benchmarks/instruction_judge_agreement.py`` is its command line).

Input: preference pairs as the ``instruction_contrast`` source writes them with ``candidates`` of 2 or
more: ``metadata.instructions`` and ``metadata.candidates`` (``texts``, and for the stored contrast
``contrast`` and ``chosen``).
Guarantees: a labelled pair is two candidates of one prompt on which the checker disagrees, keyed by
prompt and candidate indices; ties and invalid judgments are counted, never guessed; the agreement is
over the decided pairs and the prefer-shorter baseline and the paired sign test use exactly those
pairs; every rate is ``None`` where its denominator is 0.
Non-guarantee: pairs from one prompt share that prompt, so the Wilson interval (which assumes
independent pairs) is somewhat too narrow; the per-prompt pick rates do not have that issue.
"""

from __future__ import annotations

import itertools
from collections import Counter

from rlaif.instructions import check_all, wilson_interval

OUTCOMES = ("right", "wrong", "tied", "invalid")


def follows(pair) -> list[bool]:
    """The checker's verdict on each of a pair's candidates."""
    c, specs = pair.metadata["candidates"], pair.metadata["instructions"]
    return [check_all(t, specs, where=f"pair {pair.id}") for t in c["texts"]]


def labelled(ok: list[bool]) -> list[tuple[int, int]]:
    """(following, not following) candidate indices for every two on which the checker disagrees."""
    return [
        (a, b) if ok[a] else (b, a) for a, b in itertools.combinations(range(len(ok)), 2) if ok[a] != ok[b]
    ]


def rate(k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"agreement": round(k / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)]}


def versus_shorter(shorter_right: dict[str, bool], judge_right: dict[str, bool]) -> dict:
    """On the same pairs: right only by the judge ("gained") / only by length ("lost")."""
    from rlaif.tasks.metric import paired_change

    versus = paired_change(shorter_right, judge_right)
    return {
        "only_judge_right": versus["gained"],
        "only_shorter_right": versus["lost"],
        "sign_test_p": versus["sign_test_p"],
    }


def contrast_agreement(pairs) -> dict:
    """Labelled candidate pairs -> agreement of the stored contrast and of prefer-shorter with the checker."""
    judge_right: dict[str, bool] = {}
    shorter_right: dict[str, bool] = {}
    picked = mean_pass = prompts = 0.0
    scored = candidates = 0
    for pair in pairs:
        c = pair.metadata["candidates"]
        ok = follows(pair)
        prompts += 1
        picked += ok[c["chosen"]]
        mean_pass += sum(ok) / len(ok)
        candidates += len(ok)
        scored += sum(v is not None for v in c["contrast"])
        for good, bad in labelled(ok):
            if c["contrast"][good] is None or c["contrast"][bad] is None:
                continue
            key = f"{pair.id}:{good}>{bad}"
            judge_right[key] = c["contrast"][good] > c["contrast"][bad]
            shorter_right[key] = len(c["texts"][good]) < len(c["texts"][bad])
    n = len(judge_right)
    return {
        "candidates_scored": f"{scored}/{candidates}",
        "labelled_pairs": n,
        "contrast_judge": rate(sum(judge_right.values()), n),
        "baseline_prefer_shorter": rate(sum(shorter_right.values()), n),
        "judge_vs_shorter": versus_shorter(shorter_right, judge_right),
        "prompts": int(prompts),
        "picked_candidate_follows": round(picked / prompts, 4) if prompts else None,
        "random_candidate_follows": round(mean_pass / prompts, 4) if prompts else None,
    }


def judge_summary(outcome: dict[str, str], shorter: dict[str, bool]) -> dict:
    """Agreement over the decided pairs; prefer-shorter and the sign test on exactly those pairs."""
    counts = Counter(outcome.values())
    decided = [k for k, v in outcome.items() if v in ("right", "wrong")]
    judge_right = {k: outcome[k] == "right" for k in decided}
    shorter_right = {k: shorter[k] for k in decided}
    return {
        "labelled_pairs": len(outcome),
        "judged": {o: counts.get(o, 0) for o in OUTCOMES},
        "decided_pairs": len(decided),
        "judge_agreement": rate(counts.get("right", 0), len(decided)),
        "right_of_labelled": round(counts.get("right", 0) / len(outcome), 4) if outcome else None,
        "baseline_prefer_shorter": rate(sum(shorter_right.values()), len(decided)),
        "judge_vs_shorter": versus_shorter(shorter_right, judge_right),
    }


def picks(pairs, scores) -> dict:
    """How often the best-scored candidate follows (ties: the first), against a random candidate, over
    the prompts where at least one candidate has a valid score."""
    picked = mean_pass = 0.0
    with_pick = 0
    for pair, s in zip(pairs, scores, strict=True):
        ranked = [(v, -j) for j, v in enumerate(s) if v is not None]
        if not ranked:
            continue
        ok = follows(pair)
        with_pick += 1
        picked += ok[-max(ranked)[1]]
        mean_pass += sum(ok) / len(ok)
    return {
        "prompts_with_a_pick": with_pick,
        "picked_candidate_follows": round(picked / with_pick, 4) if with_pick else None,
        "random_candidate_follows": round(mean_pass / with_pick, 4) if with_pick else None,
    }
