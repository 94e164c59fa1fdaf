"""RLCF as a registered feedback source: called like every other source through the registry, with
fixed candidate programs from a ScriptedEngine executed for real in the sandbox."""

from __future__ import annotations

from pathlib import Path

from rlaif.code.jobs import CODE_STOP
from rlaif.code.problems import code_prompt, load_problems
from rlaif.engines.scripted import ScriptedEngine
from rlaif.feedback import BUILTINS, RLCFConfig, describe, run_source
from rlaif.feedback.context import SourceContext
from rlaif.feedback.rlcf import CodeFeedbackResult
from rlaif.records import derive_seed


def test_rlcf_is_registered_and_called_with_options_and_context(code_pool, assets: Path):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:2]
    refs = {p.task_id: p.reference_solution for p in problems}

    def responder(conversation, index, sampling):
        task = next(p for p in problems if p.prompt in conversation[-1].content)
        return refs[task.task_id] if index == 0 else "def nothing():\n    return None\n"

    engine = ScriptedEngine(responder)
    assert "rlcf" in BUILTINS and describe("rlcf").config_model is RLCFConfig
    context = SourceContext(seed=5, round=3, adapter="runs/x/round_2/train/adapter", chunk=0)
    options = {"k": 2, "sampling": {"temperature": 0.5, "max_tokens": 64}}
    res = run_source("rlcf", problems, engine, options, context, sandbox=code_pool)

    assert isinstance(res, CodeFeedbackResult) and res.stats.balanced
    (count, samplings, adapter) = engine.calls[0]
    assert count == 2 and adapter == context.adapter  # the adapter of the context reaches the engine
    assert {(s.n, s.temperature, s.max_tokens, tuple(s.stop)) for s in samplings} == {(2, 0.5, 64, CODE_STOP)}
    # the source contract: one seed per request, from context.seed, the stage and the request's key
    assert [s.seed for s in samplings] == [derive_seed(5, "rlcf", p.task_id, 0) for p in problems]
    assert res.stats.prompts_in == 2 and res.code_stats.executions == len(res.executions) == 4
    assert len(res.pairs) == res.stats.pairs_out == 2  # reference passes, the stub fails
    for pair in res.pairs:
        assert (pair.source, pair.round) == ("rlcf", 3)
        assert pair.metadata["adapter"] == context.adapter and pair.metadata["model"] == "scripted"


class _Seeded(ScriptedEngine):
    """Answers with the request's own seed (so a candidate shows which random stream made it), and
    counts prompt tokens as characters with a small context (so a long prompt is too long)."""

    max_model_len = 400  # an MBPP prompt shows its first assert: ~200-300 characters

    def __init__(self):
        super().__init__(lambda conv, index, sampling: f"def f():\n    return {sampling.seed + index}\n")

    def count_prompt_tokens(self, prompts):
        return [len(p[-1].content) for p in prompts]


def test_rlcf_candidates_do_not_depend_on_the_batch_and_too_long_prompts_are_dropped(code_pool, assets):
    problems = load_problems(assets / "mbpp_mini.jsonl")[:3]
    long = problems[0].model_copy(update={"prompt": "x" * 1000, "task_id": "long"})
    context = SourceContext(seed=5, round=1, adapter=None, chunk=0)
    options = {"k": 2, "partial_margin": None}
    alone = run_source("rlcf", problems[1:2], _Seeded(), options, context, sandbox=code_pool)
    batch = run_source("rlcf", [long, *problems], _Seeded(), options, context, sandbox=code_pool)

    assert len(alone.executions) == 2  # two distinct candidates, executed
    same = [e for e in batch.executions if e.task_id == problems[1].task_id]
    assert {e.id for e in same} == {e.id for e in alone.executions}  # same programs, batch or alone
    assert batch.stats.drops["prompt_too_long"] == 1 and batch.stats.balanced
    (too_long,) = [d for d in batch.dropped if d.reason == "prompt_too_long"]
    long_tokens = len(code_prompt(long)[-1].content)
    assert too_long.prompt_id == "long" and f"{long_tokens} tokens" in too_long.detail
    assert all(e.task_id != "long" for e in batch.executions)  # never sent, never run
