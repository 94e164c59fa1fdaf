"""The pair builder on the real tiny vLLM model against MBPP problems.

The tiny model is random, so it will rarely write a passing program: this checks the accounting
(one generate call, every candidate executed or counted as a duplicate, every problem accounted for),
not pass rates.
"""

from __future__ import annotations

import pytest

from rlaif.code.problems import load_problems
from rlaif.engines.base import Sampling
from rlaif.feedback.rlcf import CodePairConfig, build_code_pairs
from rlaif.prompts import load_template

pytestmark = pytest.mark.vllm


def test_pairs_from_the_tiny_model_are_fully_accounted_for(vllm_engine, code_pool, shared_data, assets):
    problems = load_problems(shared_data / "mbpp" / "mbpp.jsonl")[10:14]
    template = load_template(assets / "mbpp_prompt.j2")
    config = CodePairConfig(k=4, pairs_per_problem=2, partial_margin=0.3)
    run = build_code_pairs(
        problems,
        vllm_engine,
        code_pool,
        config=config,
        sampling=Sampling(temperature=1.0, max_tokens=48, seed=7),
        render=lambda p: template.render(task=p.prompt, tests=p.tests),
    )
    s = run.stats
    assert s.problems == 4 and s.candidates == 16
    assert s.executions == len(run.executions) == s.candidates - s.duplicates_removed
    assert s.balanced, s
    assert sum(s.status_counts.values()) == s.executions
    assert s.sandbox_errors == 0
    assert {r.task_id for r in run.executions} == {p.task_id for p in problems}
    assert all(r.tests_total == 3 for r in run.executions)
    assert len(run.pairs) == s.pairs <= 2 * s.problems_with_pair
    for pair in run.pairs:
        assert len(pair.execution_ids) == 2 and pair.margin > 0
        assert "Your code should pass these tests" in pair.prompt[-1].content


def test_repairs_from_the_tiny_model_are_fully_accounted_for(vllm_engine, code_pool, shared_data):
    """The repair turn on the real engine: every failing program chosen gets ``attempts`` repairs in
    one generate call, each executed or counted (unchanged, duplicate), every problem accounted for."""
    from rlaif.feedback import run_source
    from rlaif.feedback.context import SourceContext

    problems = load_problems(shared_data / "mbpp" / "mbpp.jsonl")[10:14]
    options = {
        "k": 2,
        "partial_margin": None,
        "sampling": {"temperature": 1.0, "max_tokens": 32},
        "repair": {"attempts": 3, "keep_sampled_pairs": False, "sampling": {"max_tokens": 32}},
    }
    context = SourceContext(seed=3, round=1, adapter=None, chunk=0)
    res = run_source("rlcf", problems, vllm_engine, options, context, sandbox=code_pool)

    rep, s = res.code_stats.repair, res.code_stats
    failing = {e.task_id for e in res.executions if "repair_of" not in e.metadata and not e.passed}
    assert rep["programs"] == len(failing) > 0  # one failing program per problem that has one
    assert rep["prompt_too_long"] == 0 and rep["repairs"] == 3 * rep["programs"]
    assert rep["executions"] + rep["unchanged"] + rep["duplicates_removed"] == rep["repairs"]
    repaired = [e for e in res.executions if "repair_of" in e.metadata]
    assert len(repaired) == rep["executions"] and {e.task_id for e in repaired} <= failing
    assert sum(v for k, v in rep.items() if k.startswith("status_")) == rep["executions"]
    assert len(res.executions) == s.executions + rep["executions"]
    assert res.stats.balanced
    assert len(res.pairs) == rep["pairs"] <= min(rep["passed"], rep["programs"])  # one pair per program
    assert all(p.metadata["pairing"] == "repair_vs_fail" for p in res.pairs)
    assert sum(res.stats.drops.values()) + res.stats.pairs_out == len(problems)
