"""Per-round code evaluation through the one verified metric, on the real tiny model and sandbox: the
figures are the ones the per-round evaluation computed before it used the metric (mean of c/n for
pass@1, the solved fraction for pass@n) from the same samples, and a re-run samples the same text."""

from __future__ import annotations

from types import SimpleNamespace

from rlaif.config.stages import PromptSource
from rlaif.pipeline.evaluation import _code_eval


def _ctx(pool, samples: int):
    ev = SimpleNamespace(
        code_problems=PromptSource(kind="demo_code", split="heldout", limit=5),
        code_samples=samples,
        code_temperature=1.0,
        max_tokens=48,
    )
    return SimpleNamespace(cfg=SimpleNamespace(seed=3, eval=ev), sandbox=lambda: pool)


def test_code_eval_figures_match_the_plain_estimator(vllm_engine, code_pool):
    rows: list[dict] = []
    metrics = _code_eval(_ctx(code_pool, 3), vllm_engine, rows)
    per_problem: dict[str, list[bool]] = {}
    for r in rows:
        per_problem.setdefault(r["id"], []).append(r["passed"])
    assert len(rows) == 15 and all(len(v) == 3 for v in per_problem.values())
    pass1 = sum(sum(v) / len(v) for v in per_problem.values()) / len(per_problem)
    solved = sum(any(v) for v in per_problem.values()) / len(per_problem)
    assert metrics["pass@1"] == round(pass1, 4) and metrics["pass@3"] == round(solved, 4)
    assert metrics["code_problems"] == 5 and sum(metrics["code_status"].values()) == 15
    again: list[dict] = []
    _code_eval(_ctx(code_pool, 3), vllm_engine, again)
    assert [r["text"] for r in again] == [r["text"] for r in rows]  # seeds per record, unchanged
