"""RLCF as a registered feedback source: called like every other source through the registry, with
fixed candidate programs from a ScriptedEngine executed for real in the sandbox."""

from __future__ import annotations

from pathlib import Path

from rlaif.code.problems import load_problems
from rlaif.engines.scripted import ScriptedEngine
from rlaif.feedback import FEEDBACK_SOURCES, RLCFConfig, run_source, source_config_model
from rlaif.feedback.context import SourceContext
from rlaif.feedback.rlcf import CodeFeedbackResult


def test_rlcf_is_registered_and_called_with_options_and_context(code_pool, assets: Path):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:2]
    refs = {p.task_id: p.reference_solution for p in problems}

    def responder(conversation, index, sampling):
        task = next(p for p in problems if p.prompt in conversation[-1].content)
        return refs[task.task_id] if index == 0 else "def nothing():\n    return None\n"

    engine = ScriptedEngine(responder)
    assert "rlcf" in FEEDBACK_SOURCES and source_config_model("rlcf") is RLCFConfig
    context = SourceContext(seed=5, round=3, adapter="runs/x/round_2/train/adapter", chunk=0)
    options = {"k": 2, "sampling": {"temperature": 0.5, "max_tokens": 64}}
    res = run_source("rlcf", problems, engine, options, context, sandbox=code_pool)

    assert isinstance(res, CodeFeedbackResult) and res.stats.balanced
    (count, sampling, adapter) = engine.calls[0]
    assert count == 2 and adapter == context.adapter  # the adapter of the context reaches the engine
    assert (sampling.n, sampling.temperature, sampling.max_tokens) == (2, 0.5, 64)
    assert res.stats.prompts_in == 2 and res.code_stats.executions == len(res.executions) == 4
    assert len(res.pairs) == res.stats.pairs_out == 2  # reference passes, the stub fails
    for pair in res.pairs:
        assert (pair.source, pair.round) == ("rlcf", 3)
        assert pair.metadata["adapter"] == context.adapter and pair.metadata["model"] == "scripted"
