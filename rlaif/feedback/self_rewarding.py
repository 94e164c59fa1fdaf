"""Self-Rewarding feedback (Yuan et al., 2024): the policy judges its own samples.

Per prompt the policy samples N candidates (default 4, T=0.7, top_p=0.9); the same policy scores each
candidate K times (default 3, sampled) with the additive rubric (``prompts/self_rewarding_rubric.j2``)
and the valid scores are averaged. The best candidate against the worst becomes a pair; ties are dropped,
and a minimum margin can be required. Optionally the prompts themselves are new ones made by few-shot
self-instruct from the given seed prompts (:mod:`rlaif.feedback.self_instruct`).

Why ``adapter``: from round 2 on the policy is the base model plus the previous round's LoRA adapter;
passing the adapter to generation and judging serves it without merging, so the loop runs round after
round on one engine.

Guarantees: candidates are one ``generate`` call (``n=N``); judging is one call plus batched retries;
candidates with empty/invalid text and candidates whose judgments are all invalid are excluded and
counted (``counters``); each prompt ends as one pair or one counted drop (``too_few_scored``, ``tie``,
``below_min_margin``, ``length_ratio``, plus the shared filters). Length bias is reported in
``stats.length`` and can be controlled with ``max_length_ratio`` or ``pairing: length_matched``.
Non-guarantee: among candidates with equal best (or worst) score the lowest index is taken, not a
random one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Engine, Sampling
from rlaif.errors import ConfigError, RecordError
from rlaif.feedback.base import (
    FeedbackResult,
    FeedbackStats,
    OutputRules,
    PerRequestSeeds,
    clean_output,
    coerce_config,
    context_overflow,
    derive_seed,
    finish,
    generate_each,
    pair_id,
)
from rlaif.feedback.context import SourceContext, apply_context
from rlaif.feedback.self_instruct import SelfInstructConfig, generate_prompts
from rlaif.pairs import PairFilterConfig, Pairing, select_pair
from rlaif.records import PreferencePair, PromptRecord


class SelfRewardingConfig(BaseModel):
    """Settings for :func:`self_rewarding`."""

    model_config = ConfigDict(extra="forbid")

    n_candidates: int = Field(4, ge=2, description="Candidates sampled per prompt (N).")
    temperature: float = Field(0.7, ge=0.0, description="Candidate sampling temperature.")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Candidate nucleus sampling mass.")
    max_tokens: int = Field(256, ge=1, description="Maximum new tokens per candidate.")
    output: OutputRules = Field(
        default_factory=OutputRules, description="Cut markers and length limits for candidates."
    )
    judge_template: str = Field(
        "self_rewarding_rubric",
        description="Pointwise judge: a rubric template (name in prompts/ or path) with a score parser, or "
        "a Python judge 'package.module:function' (in a run: set judge.template instead).",
    )
    judge_samples: int = Field(3, ge=1, description="Judgments per candidate (K); valid scores are averaged.")
    judge_max_retries: int = Field(
        2, ge=0, description="Re-ask the judge for candidates still missing valid judgments."
    )
    judge_temperature: float = Field(
        0.7, ge=0.0, description="Judge sampling temperature (judgments are sampled)."
    )
    judge_top_p: float = Field(0.9, gt=0.0, le=1.0, description="Judge nucleus sampling mass.")
    judge_max_tokens: int = Field(256, ge=1, description="Maximum new tokens per judgment.")
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
    adapter: str | None = Field(
        None, description="LoRA adapter directory of the policy, used to generate and to judge."
    )
    self_instruct: SelfInstructConfig | None = Field(
        None, description="Make new prompts from the given ones (as seeds) by few-shot self-instruct first."
    )
    seed: int = Field(0, description="Global seed: sampling seeds and self-instruct draws derive from it.")
    round: int = Field(0, ge=0, description="Iteration number recorded on every pair.")
    filter: PairFilterConfig = Field(default_factory=PairFilterConfig, description="Shared pair filters.")


def self_rewarding(
    prompts: list[PromptRecord],
    engine: Engine,
    config: SelfRewardingConfig | dict | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Best-vs-worst pairs judged by the policy itself (``judge_engine`` overrides that, for ablations)."""
    cfg = coerce_config(config, SelfRewardingConfig, "self_rewarding")
    cfg = apply_context(cfg, context)  # seed/round/adapter of this call, from the run
    if not prompts:
        raise RecordError("self_rewarding: no prompts given")
    stats = FeedbackStats(source="self_rewarding")
    result = FeedbackResult(pairs=[], stats=stats)
    if cfg.self_instruct is not None:
        new, counts = generate_prompts(
            prompts, engine, cfg.self_instruct, seed=cfg.seed, round_=cfg.round, adapter=cfg.adapter
        )
        for name, n in counts.items():
            stats.count(name, n)
        result.new_prompts = new
        prompts = (list(prompts) if cfg.self_instruct.include_seed_prompts else []) + new
    stats.prompts_in = len(prompts)
    if not prompts:
        return finish(result, [], cfg.filter)

    requests = [p.messages for p in prompts]
    too_long = context_overflow(engine, requests)
    base = Sampling(
        n=cfg.n_candidates, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
        stop=cfg.output.cut_markers,
    )  # fmt: skip
    send = [i for i in range(len(prompts)) if i not in too_long]
    seeds = {i: derive_seed(cfg.seed, "self_rewarding_candidates", cfg.round, i) for i in send}
    outputs = generate_each(
        engine,
        [requests[i] for i in send],
        [base.model_copy(update={"seed": seeds[i]}) for i in send],
        cfg.adapter,
    )
    stats.count("candidate_generate_calls")
    by_prompt = dict(zip(send, outputs, strict=True))
    texts: list[list[str | None]] = []
    items, owners = [], []
    for pi, rec in enumerate(prompts):
        row: list[str | None] = []
        for ci, comp in enumerate(by_prompt.get(pi, [])):
            text, reason = clean_output(comp.text, cfg.output, comp.finish_reason)
            row.append(text)
            if text is None:
                stats.count(f"candidates_excluded_{reason}")
            else:
                items.append((rec.messages, text))
                owners.append((pi, ci))
        texts.append(row)
    stats.count("candidates", sum(len(r) for r in texts))

    judge_seed = derive_seed(cfg.seed, "self_rewarding_judge", cfg.round)
    judge_cfg = cfg if judge_engine is None else cfg.model_copy(update={"adapter": None})  # not the policy's
    judge = _judge(judge_cfg, PerRequestSeeds(judge_engine or engine), judge_seed)
    ids = [f"{prompts[pi].id}#c{ci}" for pi, ci in owners]
    verdicts = judge.score(items, ids=ids) if items else []
    scores: list[list[float | None]] = [[None] * len(row) for row in texts]
    judgment_ids: list[list[list[str]]] = [[[] for _ in row] for row in texts]
    for (pi, ci), verdict in zip(owners, verdicts, strict=True):
        result.judgments.extend(verdict.judgments)
        judgment_ids[pi][ci] = [j.id for j in verdict.judgments]
        invalid = sum(1 for j in verdict.judgments if j.status != "ok")
        if invalid:
            stats.count("invalid_judgments", invalid)
        if verdict.mean_score is None:
            stats.count("candidates_excluded_all_judgments_invalid")
        scores[pi][ci] = verdict.mean_score

    pairs = []
    for pi, rec in enumerate(prompts):
        row = texts[pi]
        if pi in too_long:
            result.drop(rec.id, "prompt_too_long", too_long[pi])
            continue
        sel = select_pair(
            [t or "" for t in row], scores[pi], min_margin=cfg.min_margin,
            max_length_ratio=cfg.max_length_ratio, pairing=cfg.pairing,
        )  # fmt: skip
        if not sel.ok:
            result.drop(rec.id, sel.reason, f"candidate scores {scores[pi]}")
            continue
        chosen, rejected = row[sel.chosen], row[sel.rejected]
        meta: dict[str, Any] = {
            "prompt_id": rec.id,
            "model": engine.model_name,
            "judge_model": (judge_engine or engine).model_name,
            "adapter": cfg.adapter,
            "judge_template": _judge_ref(judge, cfg.judge_template),
            "candidate_scores": scores[pi],
            "chosen_index": sel.chosen,
            "rejected_index": sel.rejected,
            "chosen_score": scores[pi][sel.chosen],
            "rejected_score": scores[pi][sel.rejected],
            "pairing": cfg.pairing,
            "seeds": {"candidates": seeds[pi], "judge": judge_seed},
            "sampling": {
                "n": cfg.n_candidates,
                "temperature": cfg.temperature,
                "top_p": cfg.top_p,
                "max_tokens": cfg.max_tokens,
            },  # fmt: skip
        }
        if rec.metadata.get("source") == "self_instruct":
            meta["prompt_provenance"] = rec.metadata
        pairs.append(
            PreferencePair(
                id=pair_id("self_rewarding", cfg.round, rec.id, chosen, rejected), prompt=rec.messages,
                chosen=chosen, rejected=rejected, margin=sel.margin, source="self_rewarding", round=cfg.round,
                judgment_ids=judgment_ids[pi][sel.chosen] + judgment_ids[pi][sel.rejected], metadata=meta,
            )
        )  # fmt: skip
    return finish(result, pairs, cfg.filter)


def _judge(cfg: SelfRewardingConfig, engine: Engine, seed: int) -> Any:
    """The rubric judge (K sampled judgments, retries), or the user's pointwise Python judge."""
    from pathlib import Path

    from rlaif.judges import PointwiseJudge, load_judge
    from rlaif.judges.custom import CALLABLE_SPEC

    spec = cfg.judge_template
    if CALLABLE_SPEC.fullmatch(spec) and not Path(spec).expanduser().is_file():
        judge = load_judge(spec, engine)
        if not hasattr(judge, "score"):
            raise ConfigError(
                f"self_rewarding: judge '{spec}' is a pairwise function; self-rewarding scores each "
                "candidate and needs a pointwise one (parameters prompts, responses)"
            )
        return judge
    sampling = Sampling(
        temperature=cfg.judge_temperature, top_p=cfg.judge_top_p, max_tokens=cfg.judge_max_tokens, seed=seed
    )
    return PointwiseJudge(
        engine, template=spec, samples=cfg.judge_samples, max_retries=cfg.judge_max_retries,
        sampling=sampling, adapter=cfg.adapter,
    )  # fmt: skip


def _judge_ref(judge: Any, spec: str) -> dict[str, str]:
    tpl = getattr(judge, "template", None)
    if tpl is not None:
        return {"name": tpl.name, "hash": tpl.content_hash}
    return {"name": spec, "hash": judge.template_hash}
