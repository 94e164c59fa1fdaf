"""RLCF as a feedback source: the code instance of the verifier-gated source (:mod:`rlaif.feedback.verified`),
code candidates judged by their own unit tests in the sandbox.

Registered as ``rlcf`` next to the other sources and called the same way,
``rlcf(problems, engine, options, context, judge_engine=..., sandbox=...)``; it declares
``needs=("sandbox",)`` so the pipeline hands it the run's sandbox pool (alone it starts and closes its own).

Guarantees: those of :mod:`rlaif.feedback.verified` (one generate call, a seed per problem derived from
``context.seed``, ``"rlcf"`` and the task id, ``prompt_too_long`` drops, every problem accounted for and
every dropped one named in ``dropped``); every execution is returned in ``executions``; each pair
records the model and the adapter the engine really served. ``stats.pairs_out`` counts problems with
at least one pair (the pairs themselves may be more with ``pairs_per_problem > 1``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from rlaif.code.jobs import CODE_STOP
from rlaif.engines.base import Engine, PromptInput, Sampling, SamplingSettings
from rlaif.feedback.code_repair import CodeRepairConfig, RepairRun, repair_pairs
from rlaif.feedback.context import DEFAULT_CONTEXT, SourceContext
from rlaif.feedback.registry import feedback_source
from rlaif.feedback.result import DroppedPrompt, FeedbackResult
from rlaif.feedback.verified import (
    VerifiedPairConfig,
    VerifiedPairStats,
    VerifiedRun,
    as_feedback_result,
    verified_pairs,
)
from rlaif.pairs import length_summary
from rlaif.records import CodeProblem, ExecutionResult, PreferencePair
from rlaif.tasks.code import CodeTask

SOURCE = "rlcf"


class CodePairConfig(VerifiedPairConfig):
    """How many candidate programs to sample and how to pair them."""


class CodePairStats(VerifiedPairStats):
    """Counts for one RLCF run (``executions``: sandbox jobs run; ``sandbox_errors``: never paired)."""

    source: str = SOURCE
    repair: dict[str, int] = Field(default_factory=dict)


@dataclass
class CodePairRun:
    pairs: list[PreferencePair]
    executions: list[ExecutionResult]
    stats: CodePairStats


def build_code_pairs(
    problems: Sequence[CodeProblem],
    engine: Engine,
    pool,
    *,
    config: CodePairConfig | None = None,
    sampling: Sampling | None = None,
    adapter: str | None = None,
    render: Callable[[CodeProblem], PromptInput] | None = None,
    round: int = 0,
) -> CodePairRun:
    """Sample ``config.k`` candidates per problem, execute them in ``pool``, and pair them.

    ``sampling`` sets temperature and length; its ``seed`` (default 0) is the base of the per-problem
    seeds and its ``n`` is replaced by ``config.k``. ``render`` turns a problem into the engine prompt
    (default: ``problem.prompt`` as the user turn; e.g. ``lambda p: tpl.render(problem=p.prompt)``).
    """
    config = config or CodePairConfig()
    sampling = sampling or Sampling(
        temperature=0.8, top_p=0.95, max_tokens=512, stop=list(CODE_STOP), include_stop=True
    )
    render = render or (lambda p: p.prompt)
    context = SourceContext(seed=sampling.seed or 0, round=round, adapter=adapter, chunk=0)
    run = verified_pairs(
        CodeTask(problems, pool=pool), problems, engine, config, context, sampling, source=SOURCE,
        prompts=[render(p) for p in problems],
    )  # fmt: skip
    executions = [v.evidence for v in run.verdicts if v.evidence is not None]
    return CodePairRun(run.pairs, executions, CodePairStats.model_validate(run.stats.model_dump()))


class RLCFConfig(CodePairConfig):
    """Test-gated pair options plus the sampling of the candidates (one config block)."""

    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=256),
        description="Sampling of the candidate programs (temperature, top_p, max_tokens).",
    )
    repair: CodeRepairConfig | None = Field(
        None,
        description="Repair pairs: the policy fixes its failing programs after seeing what the sandbox "
        "reported, and a fix that passes every test beats the program it fixes (None: off).",
    )


@dataclass
class CodeFeedbackResult(FeedbackResult):
    """A :class:`FeedbackResult` plus the sandbox executions and the code-specific counts."""

    executions: list[ExecutionResult] = field(default_factory=list)
    code_stats: CodePairStats | None = None


@feedback_source(
    config=RLCFConfig, needs=("sandbox",), writes=("pairs", "judgments", "dropped", "executions")
)
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
    task = CodeTask(problems, pool=sandbox)  # starts (and closes) its own pool without one
    try:
        # only the first block is run; its closing fence stays in the pair texts (close_code_block)
        sampling = cfg.sampling.to_sampling(stop=list(CODE_STOP), include_stop=True)
        run = verified_pairs(task, problems, engine, cfg, ctx, sampling, source="rlcf")
        repaired = None
        if cfg.repair is not None:
            prompts = [task.prompt(p) for p in problems]
            repaired = repair_pairs(task, problems, prompts, run.candidates, engine, cfg.repair, ctx)
            _merge_repairs(run, repaired, problems, keep_sampled=cfg.repair.keep_sampled_pairs)
    finally:
        task.close()
    res = as_feedback_result(run, engine, ctx)
    executions = [v.evidence for v in run.verdicts if v.evidence is not None]
    code_stats = CodePairStats.model_validate(run.stats.model_dump())
    if repaired is not None:
        executions += repaired.executions
        code_stats.repair = {k: v for k, v in repaired.stats.model_dump().items() if isinstance(v, int)}
        code_stats.repair.update({f"status_{k}": v for k, v in repaired.stats.status_counts.items()})
        code_stats.seconds.update({f"repair_{k}": v for k, v in repaired.stats.seconds.items()})
    return CodeFeedbackResult(
        pairs=res.pairs, stats=res.stats, dropped=res.dropped, executions=executions, code_stats=code_stats
    )


def _merge_repairs(
    run: VerifiedRun, repaired: RepairRun, problems: Sequence[CodeProblem], *, keep_sampled: bool
) -> None:
    """The run's pairs and accounting with the repair pairs added (or, without ``keep_sampled``,
    replacing the sampled ones): every problem is still one with a pair or one counted drop. A problem
    that was repaired and gained no repair pair is dropped as ``no_passing_repair`` (what sampling
    alone made of it in the detail); one that lost its sampled pairs without being repaired (``problems:
    unsolved``) as ``sampled_pairs_not_kept``; any other keeps the reason sampling gave it."""
    sampled = run.pairs if keep_sampled else []
    run.pairs = sampled + repaired.pairs
    with_pair = {p.metadata["task_id"] for p in run.pairs}
    reasons = {d.prompt_id: d for d in run.dropped}
    run.dropped = []
    for problem in problems:
        key = problem.task_id
        if key in with_pair:
            continue
        before = reasons.get(key)
        if key in repaired.repaired:
            sampled_outcome = before.reason if before else "a sampled pair, not kept"
            drop = DroppedPrompt(
                prompt_id=key, reason="no_passing_repair", detail=f"sampled: {sampled_outcome}"
            )
        else:
            drop = before or DroppedPrompt(prompt_id=key, reason="sampled_pairs_not_kept")
        run.dropped.append(drop)
    stats = run.stats
    stats.problems_with_pair = len(with_pair)
    stats.no_pair = dict(Counter(d.reason for d in run.dropped))
    stats.pairs = len(run.pairs)
    stats.length = length_summary(run.pairs)
