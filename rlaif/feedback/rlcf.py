"""RLCF as a feedback source: code candidates judged by their own unit tests (:mod:`rlaif.code.pairs`).

Registered as ``rlcf`` next to the other sources and called the same way,
``rlcf(problems, engine, options, context, judge_engine=..., sandbox=...)``; it declares
``uses_sandbox`` so the pipeline hands it the run's sandbox pool (alone it starts and closes its own).

Guarantees: every problem is accounted for in ``stats`` (it made a pair, or its reason is counted in
``stats.drops``: ``stats.pairs_out`` counts problems with at least one pair, the pairs themselves may be
more with ``pairs_per_problem > 1``); every execution is returned in ``executions``; each pair records
the model and the adapter the engine really served. Non-guarantee: ``dropped`` is empty, since the
pairing step counts reasons per problem without naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from rlaif.code.pairs import CodePairConfig, CodePairStats, build_code_pairs
from rlaif.code.problems import code_prompt
from rlaif.engines.base import Engine, SamplingSettings
from rlaif.feedback.context import DEFAULT_CONTEXT, SourceContext
from rlaif.feedback.result import FeedbackResult
from rlaif.pairs import PairStats
from rlaif.records import CodeProblem, ExecutionResult, derive_seed


class RLCFConfig(CodePairConfig):
    """Test-gated pair options plus the sampling of the candidates (one config block)."""

    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=256),
        description="Sampling of the candidate programs (temperature, top_p, max_tokens).",
    )


@dataclass
class CodeFeedbackResult(FeedbackResult):
    """A :class:`FeedbackResult` plus the sandbox executions and the code-specific counts."""

    executions: list[ExecutionResult] = field(default_factory=list)
    code_stats: CodePairStats | None = None


def rlcf(
    problems: list[CodeProblem],
    engine: Engine,
    options: RLCFConfig | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
    sandbox=None,
) -> CodeFeedbackResult:
    """Sample ``k`` programs per problem, run them against the tests, pair passing with failing."""
    cfg = options if options is not None else RLCFConfig()
    ctx = context or DEFAULT_CONTEXT
    sampling = cfg.sampling.to_sampling(seed=derive_seed(ctx.seed, "rlcf", ctx.round))
    own_pool = sandbox is None
    if own_pool:
        from rlaif.sandbox import SandboxPool

        sandbox = SandboxPool()
    try:
        run = build_code_pairs(
            problems, engine, sandbox, config=cfg, sampling=sampling, adapter=ctx.adapter,
            render=code_prompt, round=ctx.round,
        )  # fmt: skip
    finally:
        if own_pool:
            sandbox.close()
    for pair in run.pairs:
        pair.metadata.update(model=getattr(engine, "model_name", None), adapter=ctx.adapter)
    stats = PairStats(
        source="rlcf",
        prompts_in=run.stats.problems,
        pairs_out=run.stats.problems_with_pair,
        drops=dict(run.stats.no_pair),
        counters={"pairs": run.stats.pairs, "executions": run.stats.executions},
        length=run.stats.length,
    )
    return CodeFeedbackResult(pairs=run.pairs, stats=stats, executions=run.executions, code_stats=run.stats)


rlcf.config_model = RLCFConfig
rlcf.uses_sandbox = True
