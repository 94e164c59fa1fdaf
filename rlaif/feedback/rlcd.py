"""RLCD: preference pairs from contrastive prompts (Yang et al., "RLCD", 2023).

Each prompt is sent twice, once with a positive and once with a negative descriptor of the assistant's
reply (one affix pair drawn at random per prompt, seeded). The positive output is chosen by construction;
optional ``rescore`` lets a pairwise judge keep, flip or drop the pair.

Why only the final assistant turn changes: the two prompts must stay nearly identical in surface form so
that the outputs differ in the described attribute and little else. Transcripts (HH format) get the
descriptor in the open assistant marker (``Assistant (harmless and kind):``); chat conversations get a
short note from ``prompts/rlcd_chat_affix.j2`` as a system message (or appended to the last user turn).
The pair's prompt is always the original conversation, without any affix.

Guarantees: both prompts are sampled with identical settings (same seed per attempt) in one
``generate`` call; outputs are cut at the next turn marker and length-checked; invalid outputs are
re-sampled (batched) up to ``max_retries`` times, after which the prompt is dropped and counted.
Non-guarantee: the positive output is not checked to actually be better (that is what rescore is for).
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Engine, PromptInput, Sampling
from rlaif.errors import ConfigError, RecordError
from rlaif.feedback.base import (
    FeedbackResult,
    FeedbackStats,
    OutputRules,
    PerRequestSeeds,
    coerce_config,
    derive_seed,
    finish,
    judge_kwargs,
    pair_id,
    require_str,
    resolve_resource,
    sample_with_retries,
    template_ref,
)
from rlaif.feedback.context import SourceContext, apply_context
from rlaif.files import load_yaml_mapping
from rlaif.pairs import PairFilterConfig
from rlaif.records import Message, PreferencePair, PromptRecord


class AffixPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive: str
    negative: str
    dimension: str | None = None


class AffixSet(BaseModel):
    """Contrasting descriptor pairs loaded from ``prompts/rlcd_*.yaml`` (or a user's file)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    pairs: list[AffixPair]
    path: str
    content_hash: str


def load_affix_set(spec: str) -> AffixSet:
    """Load and validate an affix set: ``pairs: [{positive, negative, dimension?}]`` or two equally long
    lists ``positive: [...]`` / ``negative: [...]``. An unbalanced set (a pair missing one side, or lists
    of different lengths) is an error naming the file and the entry."""
    path, content_hash = resolve_resource(spec)
    raw = load_yaml_mapping(path, "prompt resource")
    unknown = set(raw) - {"name", "description", "pairs", "positive", "negative"}
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {sorted(unknown)} (expected name, description, pairs)")
    pairs: list[AffixPair] = []
    if "pairs" in raw:
        if "positive" in raw or "negative" in raw:
            raise ConfigError(f"{path}: give either 'pairs' or 'positive'/'negative' lists, not both")
        if not isinstance(raw["pairs"], list) or not raw["pairs"]:
            raise ConfigError(f"{path}: field 'pairs' must be a non-empty list of {{positive, negative}}")
        for i, entry in enumerate(raw["pairs"], start=1):
            where = f"{path}: pairs[{i}]"
            if isinstance(entry, dict):
                extra = set(entry) - {"positive", "negative", "dimension"}
                if extra:
                    raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}")
                missing = [k for k in ("positive", "negative") if k not in entry]
                if len(missing) == 1:
                    raise ConfigError(f"{where}: unbalanced pair, missing field '{missing[0]}'")
            pos, neg = require_str(entry, "positive", where), require_str(entry, "negative", where)
            if pos == neg:
                raise ConfigError(f"{where}: positive and negative descriptors are identical ('{pos}')")
            dim = entry.get("dimension")
            pairs.append(
                AffixPair(positive=pos, negative=neg, dimension=str(dim) if dim is not None else None)
            )
    elif "positive" in raw or "negative" in raw:
        pos_list, neg_list = raw.get("positive") or [], raw.get("negative") or []
        if not isinstance(pos_list, list) or not isinstance(neg_list, list):
            raise ConfigError(f"{path}: 'positive' and 'negative' must be lists of strings")
        if len(pos_list) != len(neg_list):
            raise ConfigError(
                f"{path}: unbalanced affix set: {len(pos_list)} positive vs {len(neg_list)} negative descriptors"
            )
        for i, (pos, neg) in enumerate(zip(pos_list, neg_list, strict=True), start=1):
            entry = {"positive": pos, "negative": neg}
            where = f"{path}: descriptor pair {i}"
            p, n = require_str(entry, "positive", where), require_str(entry, "negative", where)
            if p == n:
                raise ConfigError(f"{where}: positive and negative descriptors are identical ('{p}')")
            pairs.append(AffixPair(positive=p, negative=n))
    if not pairs:
        raise ConfigError(f"{path}: no descriptor pairs (expected a non-empty 'pairs' list)")
    return AffixSet(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        pairs=pairs,
        path=str(path),
        content_hash=content_hash,
    )


class RescoreConfig(BaseModel):
    """RLCD-rescore: a pairwise judge re-labels each contrastive pair."""

    model_config = ConfigDict(extra="forbid")

    judge: str = Field(
        "pairwise",
        description="Judge spec for rlaif.judges.load_judge (built-in name, template path, or pkg.mod:fn).",
    )
    threshold: float = Field(
        0.5,
        ge=0.5,
        le=1.0,
        description="Keep the pair when P(positive better) >= threshold; flip it when P(negative better) >= "
        "threshold (if allow_flip); otherwise drop it as uncertain.",
    )
    allow_flip: bool = Field(
        True, description="Swap chosen/rejected when the judge prefers the negative output."
    )
    judge_options: dict = Field(
        default_factory=dict,
        description="Extra keyword arguments for the judge (e.g. both_orders, chain_of_thought).",
    )


class RLCDConfig(BaseModel):
    """Settings for :func:`rlcd`."""

    model_config = ConfigDict(extra="forbid")

    affixes: str = Field(
        "rlcd_harmless",
        description="Affix set: a name in prompts/ (rlcd_harmless, rlcd_helpful, rlcd_outline) or a YAML path.",
    )
    prompt_format: Literal["auto", "chat", "transcript"] = Field(
        "auto",
        description="auto: transcript for HH-loaded prompts (metadata format=hh_transcript), chat otherwise.",
    )
    chat_placement: Literal["system", "last_user"] = Field(
        "system",
        description="Chat form: put the affix note in a system message, or append it to the last user turn.",
    )
    tag_earlier_turns: bool = Field(
        False,
        description="Also tag earlier turns: transcript form puts the descriptor on every assistant marker; chat form "
        "with last_user placement appends the note to every user turn (system placement already covers all turns).",
    )
    chat_template: str = Field("rlcd_chat_affix", description="Template that words the chat affix note.")
    transcript_template: str = Field(
        "rlcd_transcript", description="Template that renders HH-style transcripts."
    )
    temperature: float = Field(
        1.0, ge=0.0, description="Sampling temperature for both outputs (the paper used 1.0)."
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass for both outputs.")
    max_tokens: int = Field(128, ge=1, description="Maximum new tokens per output.")
    max_retries: int = Field(
        2, ge=0, description="Re-sample an invalid output up to this many times, then drop the prompt."
    )
    output: OutputRules = Field(
        default_factory=OutputRules, description="Cut markers and length limits for outputs."
    )
    adapter: str | None = Field(
        None, description="LoRA adapter directory of the policy (None: the base model)."
    )
    seed: int = Field(0, description="Global seed: affix choice and sampling seeds derive from it.")
    round: int = Field(0, ge=0, description="Iteration number recorded on every pair.")
    rescore: RescoreConfig | None = Field(
        None, description="Optional judge pass that keeps, flips or drops pairs."
    )
    filter: PairFilterConfig = Field(default_factory=PairFilterConfig, description="Shared pair filters.")


def _chat_prompt(messages: list[Message], note: str, cfg: RLCDConfig) -> list[Message]:
    msgs = [m.model_copy() for m in messages]
    if cfg.chat_placement == "system":
        if msgs and msgs[0].role == "system":
            msgs[0] = Message(role="system", content=f"{msgs[0].content}\n\n{note}")
        else:
            msgs.insert(0, Message(role="system", content=note))
        return msgs
    last_user = max(i for i, m in enumerate(msgs) if m.role == "user")
    for i, m in enumerate(msgs):
        if m.role == "user" and (i == last_user or cfg.tag_earlier_turns):
            msgs[i] = Message(role="user", content=f"{m.content}\n\n{note}")
    return msgs


def rlcd(
    prompts: list[PromptRecord],
    engine: Engine,
    config: RLCDConfig | dict | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Contrastive pairs for ``prompts``; ``judge_engine`` (default: ``engine``) serves the rescore judge."""
    from rlaif.prompts import load_template

    cfg = coerce_config(config, RLCDConfig, "rlcd")
    cfg = apply_context(cfg, context)  # seed/round/adapter of this call, from the run
    if not prompts:
        raise RecordError("rlcd: no prompts given")
    affixes = load_affix_set(cfg.affixes)
    chat_tpl = load_template(cfg.chat_template)
    transcript_tpl = load_template(cfg.transcript_template)
    result = FeedbackResult(pairs=[], stats=FeedbackStats(source="rlcd", prompts_in=len(prompts)))

    requests: list[PromptInput] = []
    keys: list[str] = []
    plans = []
    for idx, rec in enumerate(prompts):
        k = random.Random(derive_seed(cfg.seed, "rlcd_affix", idx)).randrange(len(affixes.pairs))
        affix = affixes.pairs[k]
        fmt = cfg.prompt_format
        if fmt == "auto":
            fmt = "transcript" if rec.metadata.get("format") == "hh_transcript" else "chat"
        for side, descriptor in (("positive", affix.positive), ("negative", affix.negative)):
            keys.append(f"{idx}:{side}")
            if fmt == "transcript":
                text = transcript_tpl.render(
                    messages=rec.messages, descriptor=descriptor, tag_earlier_turns=cfg.tag_earlier_turns
                )
                requests.append(text.rstrip("\n"))
            else:
                note = chat_tpl.render(descriptor=descriptor).strip()
                requests.append(_chat_prompt(rec.messages, note, cfg))
        plans.append((rec, k, affix, fmt))

    sampling = Sampling(
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, stop=cfg.output.cut_markers
    )
    sampled = sample_with_retries(
        engine, requests, sampling, cfg.output, max_retries=cfg.max_retries, seed=cfg.seed,
        stage="rlcd", keys=keys, adapter=cfg.adapter, stats=result.stats,
    )  # fmt: skip

    candidates = []
    for idx, (rec, k, affix, fmt) in enumerate(plans):
        pos, neg = sampled[2 * idx], sampled[2 * idx + 1]
        if pos.text is None or neg.text is None:
            why = ", ".join(
                f"{side}: {s.reason}" for side, s in (("positive", pos), ("negative", neg)) if s.text is None
            )
            if "prompt_too_long" in (pos.reason, neg.reason):
                result.drop(rec.id, "prompt_too_long", pos.raw or neg.raw)
            else:
                result.drop(
                    rec.id, "invalid_output", f"still invalid after {cfg.max_retries} retries ({why})"
                )
            continue
        meta = {
            "prompt_id": rec.id,
            "model": engine.model_name,
            "adapter": cfg.adapter,
            "prompt_format": fmt,
            "affix_set": {"name": affixes.name, "hash": affixes.content_hash},
            "affix_index": k,
            "positive": affix.positive,
            "negative": affix.negative,
            "dimension": affix.dimension,
            "template": template_ref(transcript_tpl if fmt == "transcript" else chat_tpl),
            "sampling": {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens},
            "seeds": {"positive": pos.seed, "negative": neg.seed},
            "attempts": {"positive": pos.attempts, "negative": neg.attempts},
            "chosen_side": "positive",
        }
        candidates.append((rec, pos.text, neg.text, meta))

    if cfg.rescore is not None and candidates:
        candidates = _rescore(candidates, cfg.rescore, judge_engine or engine, result)

    pairs = [
        PreferencePair(
            id=pair_id("rlcd", cfg.round, rec.id, chosen, rejected),
            prompt=rec.messages,
            chosen=chosen,
            rejected=rejected,
            soft_label=meta.get("rescore", {}).get("soft_label"),
            margin=meta.get("rescore", {}).get("margin"),
            source="rlcd",
            round=cfg.round,
            judgment_ids=meta.get("rescore", {}).get("judgment_ids", []),
            metadata=meta,
        )
        for rec, chosen, rejected, meta in candidates
    ]
    return finish(result, pairs, cfg.filter)


def _rescore(candidates, rescore: RescoreConfig, judge_engine: Engine, result: FeedbackResult):
    """Keep, flip or drop each (positive, negative) pair by the judge's P(positive is better)."""
    from rlaif.judges import load_judge

    judge = load_judge(
        rescore.judge,
        PerRequestSeeds(judge_engine),
        **judge_kwargs(rescore.judge_options, (), "rlcd rescore"),
    )
    verdicts = judge.compare(
        [(rec.messages, pos, neg) for rec, pos, neg, _ in candidates], ids=[rec.id for rec, *_ in candidates]
    )
    if len(verdicts) != len(candidates):
        raise ConfigError(
            f"rlcd rescore: judge '{rescore.judge}' returned {len(verdicts)} results for {len(candidates)} pairs"
        )
    kept = []
    for (rec, pos, neg, meta), verdict in zip(candidates, verdicts, strict=True):
        result.judgments.extend(verdict.judgments)
        ids = [j.id for j in verdict.judgments]
        prob = verdict.prob_a
        if prob is None:
            result.stats.count("rescore_invalid_judgments")
            result.drop(rec.id, "rescore_invalid", "the judge's output could not be parsed in any order")
            continue
        info = {"judge": rescore.judge, "prob_positive": prob, "threshold": rescore.threshold,
                "consistent": verdict.consistent, "judgment_ids": ids}  # fmt: skip
        if prob >= rescore.threshold:
            meta["rescore"] = {**info, "action": "keep", "soft_label": prob, "margin": 2 * prob - 1}
            kept.append((rec, pos, neg, meta))
        elif rescore.allow_flip and 1 - prob >= rescore.threshold:
            result.stats.count("rescore_flipped")
            meta["rescore"] = {**info, "action": "flip", "soft_label": 1 - prob, "margin": 1 - 2 * prob}
            meta["chosen_side"] = "negative"
            kept.append((rec, neg, pos, meta))
        else:
            result.drop(
                rec.id,
                "rescore_uncertain",
                f"P(positive better)={prob:.3f} within the threshold {rescore.threshold}",
            )
    return kept


__all__ = ["AffixPair", "AffixSet", "RLCDConfig", "RescoreConfig", "load_affix_set", "rlcd"]
