"""RL-CAI (Bai et al., 2022): two policy samples per prompt, labelled by the principle judge.

Two samples per prompt, labelled by the principle-conditioned multiple-choice judge
(:class:`rlaif.judges.PrincipleJudge`, one principle sampled per comparison). Soft labels are the
normalised choice probabilities, clamped where asked; chain-of-thought labels are near 0/1 and are
clamped to [0.4, 0.6] by default.

Guarantees: sampling is one ``generate`` call plus batched retries and judging one judge call;
principle draws depend only on the seed and the prompt; every prompt ends as one pair or one
counted drop (``invalid_response``, ``identical_samples``, ``invalid_judgment``, ``tie``); pairs are
filtered by the pairs stage only.
Non-guarantee: the judge's label is taken as is; position bias is only reduced by showing both orders.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.errors import ConfigError
from rlaif.feedback.context import SourceContext
from rlaif.feedback.registry import feedback_source
from rlaif.feedback.result import FeedbackResult, finish, new_result, pair_id
from rlaif.feedback.source import SourceConfig, require_prompts
from rlaif.generation.retry import PerRequestSeeds
from rlaif.generation.texts import Sampled, failure, sample_n_with_retries
from rlaif.judges.spec import build_judge
from rlaif.records import PreferencePair, PromptRecord


class RLCAIConfig(SourceConfig):
    """Settings for :func:`rl_cai`."""

    principles: str = Field(
        "cai_principles", description="Principles file for the judge (name in prompts/ or path)."
    )
    chain_of_thought: bool = Field(
        False, description="Let the judge reason before choosing (labels then clamped)."
    )
    clamp: tuple[float, float] | None = Field(
        None,
        description="Clamp soft labels to [lo, hi]; default (0.4, 0.6) with chain_of_thought, none otherwise.",
    )
    sampling: SamplingSettings = Field(
        default_factory=SamplingSettings, description="Sampling of the two responses."
    )
    max_retries: int = Field(
        2, ge=0, description="Re-sample invalid responses up to this many times, then drop."
    )
    judge_adapter: str | None = Field(
        None, description="LoRA adapter for the feedback model (None: its base model)."
    )

    def effective_clamp(self) -> tuple[float, float] | None:
        if self.clamp is not None:
            lo, hi = self.clamp
            if not 0.0 <= lo < 0.5 < hi <= 1.0:
                raise ConfigError(f"rl_cai: clamp must satisfy 0 <= lo < 0.5 < hi <= 1, got {self.clamp}")
            return self.clamp
        return (0.4, 0.6) if self.chain_of_thought else None


def soft_label(prob_a: float, clamp: tuple[float, float] | None) -> tuple[str, float] | None:
    """Which side is chosen ('a' or 'b') and P(chosen is better) after clamping; None for a tie."""
    p = prob_a if clamp is None else min(max(prob_a, clamp[0]), clamp[1])
    if p == 0.5:
        return None
    return ("a", p) if p > 0.5 else ("b", 1.0 - p)


@feedback_source(
    config=RLCAIConfig, judge="compare", judge_kinds=("principle",), default_judge="cai_principle_choice"
)
def rl_cai(
    prompts: list[PromptRecord],
    engine: Engine,
    options: RLCAIConfig,
    context: SourceContext,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Two policy samples per prompt, labelled by the principle judge on ``judge_engine`` (default: the
    policy engine). Pair margin = 2 * soft_label - 1 (the gap between the two normalised probabilities)."""
    require_prompts(prompts, "rl_cai")
    clamp = options.effective_clamp()
    result = new_result("rl_cai", prompts)
    todo = _two_samples(prompts, engine, options, context, result)
    judge = _principle_judge(judge_engine or engine, options, clamp, context)
    items = [(rec.messages, a.text, b.text) for rec, a, b in todo]
    verdicts = judge.compare(items, ids=[rec.id for rec, _, _ in todo]) if todo else []
    provenance = {
        "model": engine.model_name,
        "judge_model": (judge_engine or engine).model_name,
        "adapter": context.adapter,
        "judge_adapter": options.judge_adapter,
        "principles_file": options.principles,
        "chain_of_thought": options.chain_of_thought,
        "clamp": list(clamp) if clamp else None,
        "sampling": options.sampling.model_dump(),
    }
    pairs = []
    for (rec, a, b), verdict in zip(todo, verdicts, strict=True):
        result.judgments.extend(verdict.judgments)
        pair = _labelled_pair(rec, a, b, verdict, clamp, context.round, provenance)
        if isinstance(pair, PreferencePair):
            pairs.append(pair)
            continue
        if pair[0] == "invalid_judgment":
            result.stats.count("invalid_judgments", len(verdict.judgments))
        result.drop(rec.id, *pair)
    return finish(result, pairs)


def _two_samples(
    prompts: list[PromptRecord],
    engine: Engine,
    cfg: RLCAIConfig,
    context: SourceContext,
    result: FeedbackResult,
) -> list[tuple[PromptRecord, Sampled, Sampled]]:
    """Two valid, different samples per prompt; the rest are dropped and counted."""
    samples = sample_n_with_retries(
        engine, [p.messages for p in prompts], cfg.output.sampling(cfg.sampling), cfg.output, n=2,
        max_retries=cfg.max_retries, seed=context.seed, stage="rl_cai_response", adapter=context.adapter,
        stats=result.stats,
    )  # fmt: skip
    todo = []
    for rec, (a, b) in zip(prompts, samples, strict=True):
        if a.text is None or b.text is None:
            result.drop(rec.id, *failure("invalid_response", a if a.text is None else b))
        elif a.text == b.text:
            result.drop(rec.id, "identical_samples", "both samples are the same text")
        else:
            todo.append((rec, a, b))
    return todo


def _principle_judge(
    engine: Engine, cfg: RLCAIConfig, clamp: tuple[float, float] | None, context: SourceContext
) -> Any:
    """The run's principle judge, given what RL-CAI decides: principles, chain of thought, clamp, seed."""
    spec = rl_cai.source_spec.judge_for(context)
    return build_judge(
        spec, PerRequestSeeds(engine), principles=cfg.principles, chain_of_thought=cfg.chain_of_thought,
        clamp=clamp, seed=context.seed, adapter=cfg.judge_adapter,
    )  # fmt: skip


def _labelled_pair(
    rec: PromptRecord, a: Sampled, b: Sampled, verdict: Any, clamp: tuple[float, float] | None, round_: int,
    provenance: dict[str, Any],
) -> PreferencePair | tuple[str, str]:  # fmt: skip
    """The pair the verdict labels, or (drop reason, detail)."""
    if verdict.prob_a is None:
        return "invalid_judgment", "the judge's output could not be parsed"
    label = soft_label(verdict.prob_a, clamp)
    if label is None:
        return "tie", "P(A) = P(B) = 0.5"
    side, p = label
    chosen, rejected = (a, b) if side == "a" else (b, a)
    meta = {
        "prompt_id": rec.id, **provenance,
        "principles": [j.principle for j in verdict.judgments if j.principle],
        "prob_a": verdict.prob_a, "consistent": verdict.consistent, "chosen_sample": side,
        "seeds": {"chosen": chosen.seed, "rejected": rejected.seed},
    }  # fmt: skip
    return PreferencePair(
        id=pair_id("rl_cai", round_, rec.id, chosen.text, rejected.text), prompt=rec.messages, chosen=chosen.text,
        rejected=rejected.text, soft_label=p, margin=2 * p - 1, source="rl_cai", round=round_,
        judgment_ids=[j.id for j in verdict.judgments], metadata=meta,
    )  # fmt: skip
