"""pass@k with the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k).

Why not "fraction of the first k samples that pass": with n > k samples per task, the estimator uses
all of them and has no sampling bias. It is computed exactly with integer binomials (true division
of Python ints is correctly rounded), so there is no loss of precision for large n.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= correct <= samples, got correct={c}, samples={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task (got {n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(
    counts: Mapping[str, tuple[int, int]], ks: Iterable[int]
) -> tuple[dict[str, float], dict[str, str]]:
    """pass@k averaged over tasks, from {task_id: (samples, correct)}.

    A k larger than some task's sample count is not reported (as in human-eval); the second dict
    says why for each skipped k.
    """
    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    if not counts:
        return scores, {f"pass@{k}": "no tasks with samples" for k in ks}
    fewest = min(n for n, _ in counts.values())
    for k in ks:
        if k > fewest:
            short = sum(1 for n, _ in counts.values() if n < k)
            skipped[f"pass@{k}"] = f"{short} task(s) have fewer than {k} samples (fewest: {fewest})"
            continue
        values = [pass_at_k(n, c, k) for n, c in counts.values()]
        scores[f"pass@{k}"] = sum(values) / len(values)
    return scores, skipped
