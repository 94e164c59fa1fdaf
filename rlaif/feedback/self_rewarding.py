"""Self-Rewarding feedback (Yuan et al., 2024): the policy judges its own samples.

Per prompt the policy samples N candidates (default 4, T=0.7, top_p=0.9); the same policy scores each
candidate with the run's score judge (the ``score`` slot: any score kind; default the additive rubric
``prompts/self_rewarding_rubric.j2``, K=3 sampled judgments averaged). The best candidate against the worst becomes a pair; ties are dropped,
and a minimum margin can be required. Optionally the prompts themselves are new ones made by few-shot
self-instruct from the given seed prompts (:mod:`rlaif.feedback.self_instruct`).

Why ``adapter``: from round 2 on the policy is the base model plus the previous round's LoRA adapter;
passing the adapter to generation and judging serves it without merging, so the loop runs round after
round on one engine.

Guarantees: candidates are one ``generate`` call (``n=N``); judging is one call plus batched retries;
candidates with empty/invalid text and candidates whose judgments are all invalid are excluded and
counted (``counters``); each prompt ends as one pair or one counted drop (``too_few_scored``, ``tie``,
``below_min_margin``, ``length_ratio``; the shared filters run in the pairs stage). Length bias is in
``stats.length`` and can be controlled with ``max_length_ratio``, ``min_length_ratio`` or
``pairing: length_matched``.
Non-guarantee: among candidates with equal best (or worst) score the lowest index is taken, not a
random one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.feedback.context import SourceContext
from rlaif.feedback.registry import feedback_source
from rlaif.feedback.result import FeedbackResult, finish, pair_id
from rlaif.feedback.self_instruct import SelfInstructConfig, generate_prompts
from rlaif.feedback.source import SourceConfig, require_prompts
from rlaif.generation.output_rules import clean_output
from rlaif.generation.retry import PerRequestSeeds, sample_until_valid
from rlaif.judges.spec import build_judge
from rlaif.pairs import Pairing, PairStats, select_pair
from rlaif.records import PreferencePair, PromptRecord, derive_seed


class SelfRewardingConfig(SourceConfig):
    """Settings for :func:`self_rewarding`."""

    num_generations: int = Field(4, ge=2, description="Candidates sampled per prompt (N).")
    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=0.7, top_p=0.9, max_tokens=256),
        description="Sampling of the candidates.",
    )
    min_margin: float = Field(
        0.0, ge=0.0, description="Minimum best-minus-worst mean score for a pair (ties always dropped)."
    )
    pairing: Pairing = Field(
        "max_min",
        description="max_min: best vs worst; length_matched: the scored pair with the closest lengths.",
    )
    max_length_ratio: float | None = Field(
        None,
        gt=1.0,
        description="Reject pairs whose chosen text is more than this many times longer than the rejected one.",
    )
    min_length_ratio: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Reject pairs whose chosen text is shorter than this fraction (characters) of the "
        "rejected one (a judge that rewards stubs); with pairing length_matched the next pair is tried.",
    )
    self_instruct: SelfInstructConfig | None = Field(
        None, description="Make new prompts from the given ones (as seeds) by few-shot self-instruct first."
    )


@dataclass
class _Candidates:
    """Per prompt: the cleaned candidate texts (None: excluded), their scores and judgment ids."""

    texts: list[list[str | None]]
    seeds: dict[int, int]
    too_long: dict[int, str]
    judge_seed: int = 0
    scores: list[list[float | None]] = field(default_factory=list)
    judgment_ids: list[list[list[str]]] = field(default_factory=list)


@feedback_source(
    config=SelfRewardingConfig, judge="score", default_judge="self_rewarding_rubric",
    writes=("pairs", "judgments", "dropped", "new_prompts"),
)  # fmt: skip
def self_rewarding(
    prompts: list[PromptRecord],
    engine: Engine,
    options: SelfRewardingConfig,
    context: SourceContext,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Best-vs-worst pairs judged by the policy itself (``judge_engine`` overrides that, for ablations)."""
    require_prompts(prompts, "self_rewarding")
    result = FeedbackResult(pairs=[], stats=PairStats(source="self_rewarding"))
    prompts = _with_self_instruct(prompts, engine, options, context, result)
    result.stats.prompts_in = len(prompts)
    if not prompts:
        return finish(result, [])
    cands = _sample_candidates(prompts, engine, options, context, result.stats)
    cands.judge_seed = derive_seed(context.seed, "self_rewarding_judge", context.round)
    judge_adapter = context.adapter if judge_engine is None else None  # a separate judge is not the policy
    spec = self_rewarding.source_spec.judge_for(context)
    judge = build_judge(
        spec, PerRequestSeeds(judge_engine or engine), seed=cands.judge_seed, adapter=judge_adapter
    )
    _score_candidates(judge, prompts, cands, result)
    common = {
        "model": engine.model_name,
        "judge_model": (judge_engine or engine).model_name,
        "adapter": context.adapter,
        "judge_template": _judge_ref(judge, spec.template),
    }
    pairs = []
    for pi, rec in enumerate(prompts):
        if pi in cands.too_long:
            result.drop(rec.id, "prompt_too_long", cands.too_long[pi])
            continue
        pair = _best_vs_worst(pi, rec, cands, options, context, common)
        if isinstance(pair, PreferencePair):
            pairs.append(pair)
        else:
            result.drop(rec.id, *pair)
    return finish(result, pairs)


def _with_self_instruct(
    prompts: list[PromptRecord], engine: Engine, cfg: SelfRewardingConfig, context: SourceContext,
    result: FeedbackResult,
) -> list[PromptRecord]:  # fmt: skip
    """The prompts to pair: the given ones, or new ones made from them by self-instruct."""
    if cfg.self_instruct is None:
        return prompts
    new, counts = generate_prompts(
        prompts, engine, cfg.self_instruct, seed=context.seed, round_=context.round, adapter=context.adapter
    )
    for name, n in counts.items():
        result.stats.count(name, n)
    result.new_prompts = new
    return (list(prompts) if cfg.self_instruct.include_seed_prompts else []) + new


def _sample_candidates(
    prompts: list[PromptRecord], engine: Engine, cfg: SelfRewardingConfig, context: SourceContext,
    stats: PairStats,
) -> _Candidates:  # fmt: skip
    """N candidates per prompt in one call (seeded per prompt); invalid texts are excluded and counted."""
    base = cfg.output.sampling(cfg.sampling, n=cfg.num_generations)
    texts: list[list[str | None]] = [[] for _ in prompts]
    seeds = {
        i: derive_seed(context.seed, "self_rewarding_candidates", context.round, i)
        for i in range(len(prompts))
    }

    def take(pi: int, completions: list, attempt: int) -> bool:
        for comp in completions:
            text, reason = clean_output(comp.text, cfg.output, comp.finish_reason)
            texts[pi].append(text)
            if text is None:
                stats.count(f"candidates_excluded_{reason}")
        return False

    report = sample_until_valid(
        engine, [p.messages for p in prompts], max_retries=0, adapter=context.adapter, take=take,
        samplings=lambda pending, _: [base.model_copy(update={"seed": seeds[i]}) for i in pending],
    )  # fmt: skip
    stats.count("candidate_generate_calls", report.calls)
    stats.count("candidates", sum(len(r) for r in texts))
    return _Candidates(texts=texts, seeds=seeds, too_long=report.too_long)


def _score_candidates(
    judge: Any, prompts: list[PromptRecord], cands: _Candidates, result: FeedbackResult
) -> None:
    """Judge every valid candidate once (K samples each); fills ``cands.scores`` and ``judgment_ids``."""
    owners = [
        (pi, ci) for pi, row in enumerate(cands.texts) for ci, text in enumerate(row) if text is not None
    ]
    items = [(prompts[pi].messages, cands.texts[pi][ci]) for pi, ci in owners]
    ids = [f"{prompts[pi].id}#c{ci}" for pi, ci in owners]
    verdicts = judge.score(items, ids=ids) if items else []
    cands.scores = [[None] * len(row) for row in cands.texts]
    cands.judgment_ids = [[[] for _ in row] for row in cands.texts]
    for (pi, ci), verdict in zip(owners, verdicts, strict=True):
        result.judgments.extend(verdict.judgments)
        cands.judgment_ids[pi][ci] = [j.id for j in verdict.judgments]
        invalid = sum(1 for j in verdict.judgments if j.status != "ok")
        if invalid:
            result.stats.count("invalid_judgments", invalid)
        if verdict.mean_score is None:
            result.stats.count("candidates_excluded_all_judgments_invalid")
        cands.scores[pi][ci] = verdict.mean_score


def _best_vs_worst(
    pi: int, rec: PromptRecord, cands: _Candidates, cfg: SelfRewardingConfig, context: SourceContext,
    common: dict[str, Any],
) -> PreferencePair | tuple[str, str]:  # fmt: skip
    """The prompt's pair, or (drop reason, detail)."""
    row, scores = cands.texts[pi], cands.scores[pi]
    sel = select_pair(
        [t or "" for t in row], scores, min_margin=cfg.min_margin,
        max_length_ratio=cfg.max_length_ratio, min_length_ratio=cfg.min_length_ratio, pairing=cfg.pairing,
    )  # fmt: skip
    if not sel.ok:
        return sel.reason, f"candidate scores {scores}"
    chosen, rejected = row[sel.chosen], row[sel.rejected]
    meta: dict[str, Any] = {
        "prompt_id": rec.id, **common, "candidate_scores": scores, "chosen_index": sel.chosen,
        "rejected_index": sel.rejected, "chosen_score": scores[sel.chosen], "rejected_score": scores[sel.rejected],
        "pairing": cfg.pairing, "seeds": {"candidates": cands.seeds[pi], "judge": cands.judge_seed},
        "sampling": {"n": cfg.num_generations, **cfg.sampling.model_dump()},
    }  # fmt: skip
    if rec.metadata.get("source") == "self_instruct":
        meta["prompt_provenance"] = rec.metadata
    return PreferencePair(
        id=pair_id("self_rewarding", context.round, rec.id, chosen, rejected), prompt=rec.messages,
        chosen=chosen, rejected=rejected, margin=sel.margin, source="self_rewarding", round=context.round,
        judgment_ids=cands.judgment_ids[pi][sel.chosen] + cands.judgment_ids[pi][sel.rejected], metadata=meta,
    )  # fmt: skip


def _judge_ref(judge: Any, spec: str) -> dict[str, str]:
    tpl = getattr(judge, "template", None)
    if tpl is not None:
        return {"name": tpl.name, "hash": tpl.content_hash}
    return {"name": spec, "hash": judge.template_hash}
