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
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlaif.engines.base import Engine, PromptInput, SamplingSettings
from rlaif.errors import ConfigError
from rlaif.feedback.context import SourceContext
from rlaif.feedback.registry import feedback_source
from rlaif.feedback.resources import require_str, resolve_resource, template_ref
from rlaif.feedback.result import FeedbackResult, finish, new_result, pair_id
from rlaif.feedback.source import SourceConfig, require_prompts
from rlaif.files import load_yaml_mapping
from rlaif.generation.retry import PerRequestSeeds
from rlaif.generation.texts import Sampled, sample_with_retries
from rlaif.prompts import check_template_variables, load_template
from rlaif.records import Message, PreferencePair, PromptRecord, derive_seed


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
    """RLCD-rescore: the run's compare judge (``judge:``, default pairwise) re-labels each pair."""

    model_config = ConfigDict(extra="forbid")

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


class RLCDConfig(SourceConfig):
    """Settings for :func:`rlcd`."""

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
    sampling: SamplingSettings = Field(
        default_factory=SamplingSettings,
        description="Sampling of both outputs (same settings for both; the paper used temperature 1.0).",
    )
    max_retries: int = Field(
        2, ge=0, description="Re-sample an invalid output up to this many times, then drop the prompt."
    )
    rescore: RescoreConfig | None = Field(
        None, description="Optional judge pass that keeps, flips or drops pairs."
    )

    @field_validator("chat_template")
    @classmethod
    def _chat_template_renders(cls, name: str) -> str:
        return check_template_variables(name, supplied=["descriptor"], required=["descriptor"])

    @field_validator("transcript_template")
    @classmethod
    def _transcript_template_renders(cls, name: str) -> str:
        return check_template_variables(
            name,
            supplied=["messages", "descriptor", "tag_earlier_turns"],
            required=["messages", "descriptor"],
        )

    @property
    def uses_judge(self) -> bool:
        """The run's compare judge is asked only with ``rescore`` (read by the source registry)."""
        return self.rescore is not None


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


@dataclass
class _Plan:
    """One prompt's contrast: the affix drawn for it and the form its two requests take."""

    record: PromptRecord
    affix_index: int
    affix: AffixPair
    form: str


@feedback_source(config=RLCDConfig, judge="compare", default_judge="pairwise")
def rlcd(
    prompts: list[PromptRecord],
    engine: Engine,
    options: RLCDConfig,
    context: SourceContext,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Contrastive pairs for ``prompts``; ``judge_engine`` (default: ``engine``) serves the rescore judge."""
    require_prompts(prompts, "rlcd")
    affixes = load_affix_set(options.affixes)
    templates = {"chat": load_template(options.chat_template),
                 "transcript": load_template(options.transcript_template)}  # fmt: skip
    result = new_result("rlcd", prompts)
    plans = [_plan(i, rec, affixes, options, context) for i, rec in enumerate(prompts)]
    requests, keys = _contrast_requests(plans, templates, options)
    sampled = sample_with_retries(
        engine, requests, options.output.sampling(options.sampling), options.output,
        max_retries=options.max_retries, seed=context.seed, stage="rlcd", keys=keys,
        adapter=context.adapter, stats=result.stats,
    )  # fmt: skip
    candidates = []
    for i, plan in enumerate(plans):
        pos, neg = sampled[2 * i], sampled[2 * i + 1]
        if _dropped_invalid(result, plan.record, pos, neg, options.max_retries):
            continue
        meta = _provenance(plan, pos, neg, affixes, templates[plan.form], engine, options, context)
        candidates.append((plan.record, pos.text, neg.text, meta))
    if options.rescore is not None and candidates:
        candidates = _rescore(candidates, options.rescore, judge_engine or engine, result, context)
    return finish(result, [_pair(c, context.round) for c in candidates])


def _plan(idx: int, rec: PromptRecord, affixes: AffixSet, cfg: RLCDConfig, context: SourceContext) -> _Plan:
    """The affix drawn for the prompt at position ``idx`` (seeded) and its form (chat or transcript)."""
    k = random.Random(derive_seed(context.seed, "rlcd_affix", idx)).randrange(len(affixes.pairs))
    form = cfg.prompt_format
    if form == "auto":
        form = "transcript" if rec.metadata.get("format") == "hh_transcript" else "chat"
    return _Plan(record=rec, affix_index=k, affix=affixes.pairs[k], form=form)


def _contrast_requests(
    plans: list[_Plan], templates: dict[str, Any], cfg: RLCDConfig
) -> tuple[list[PromptInput], list[str]]:
    """Positive then negative request of every prompt, with their seed keys (``<idx>:<side>``)."""
    requests: list[PromptInput] = []
    keys: list[str] = []
    for idx, plan in enumerate(plans):
        for side, descriptor in (("positive", plan.affix.positive), ("negative", plan.affix.negative)):
            keys.append(f"{idx}:{side}")
            if plan.form == "transcript":
                text = templates["transcript"].render(
                    messages=plan.record.messages,
                    descriptor=descriptor,
                    tag_earlier_turns=cfg.tag_earlier_turns,
                )
                requests.append(text.rstrip("\n"))
            else:
                note = templates["chat"].render(descriptor=descriptor).strip()
                requests.append(_chat_prompt(plan.record.messages, note, cfg))
    return requests, keys


def _dropped_invalid(
    result: FeedbackResult, rec: PromptRecord, pos: Sampled, neg: Sampled, max_retries: int
) -> bool:
    """Count the prompt as dropped when either side has no valid output; True when dropped."""
    if pos.text is not None and neg.text is not None:
        return False
    why = ", ".join(
        f"{side}: {s.reason}" for side, s in (("positive", pos), ("negative", neg)) if s.text is None
    )
    if "prompt_too_long" in (pos.reason, neg.reason):
        result.drop(rec.id, "prompt_too_long", pos.raw or neg.raw)
    else:
        result.drop(rec.id, "invalid_output", f"still invalid after {max_retries} retries ({why})")
    return True


def _provenance(
    plan: _Plan, pos: Sampled, neg: Sampled, affixes: AffixSet, template: Any, engine: Engine,
    cfg: RLCDConfig, context: SourceContext,
) -> dict[str, Any]:  # fmt: skip
    return {
        "prompt_id": plan.record.id,
        "model": engine.model_name,
        "adapter": context.adapter,
        "prompt_format": plan.form,
        "affix_set": {"name": affixes.name, "hash": affixes.content_hash},
        "affix_index": plan.affix_index,
        "positive": plan.affix.positive,
        "negative": plan.affix.negative,
        "dimension": plan.affix.dimension,
        "template": template_ref(template),
        "sampling": cfg.sampling.model_dump(),
        "seeds": {"positive": pos.seed, "negative": neg.seed},
        "attempts": {"positive": pos.attempts, "negative": neg.attempts},
        "chosen_side": "positive",
    }


def _pair(candidate: tuple, round_: int) -> PreferencePair:
    rec, chosen, rejected, meta = candidate
    rescore = meta.get("rescore", {})
    return PreferencePair(
        id=pair_id("rlcd", round_, rec.id, chosen, rejected), prompt=rec.messages, chosen=chosen,
        rejected=rejected, soft_label=rescore.get("soft_label"), margin=rescore.get("margin"),
        source="rlcd", round=round_, judgment_ids=rescore.get("judgment_ids", []), metadata=meta,
    )  # fmt: skip


def _rescore(
    candidates, rescore: RescoreConfig, judge_engine: Engine, result: FeedbackResult, context: SourceContext
):
    """Keep, flip or drop each (positive, negative) pair by the run's compare judge's P(positive better)."""
    from rlaif.judges.spec import build_judge

    spec = rlcd.source_spec.judge_for(context)
    seed = derive_seed(context.seed, "rlcd_rescore")  # seeds the judge's sampling where the spec sets one
    judge = build_judge(spec, PerRequestSeeds(judge_engine), seed=seed)
    verdicts = judge.compare(
        [(rec.messages, pos, neg) for rec, pos, neg, _ in candidates], ids=[rec.id for rec, *_ in candidates]
    )
    if len(verdicts) != len(candidates):
        raise ConfigError(
            f"rlcd rescore: judge '{spec.template}' returned {len(verdicts)} results for {len(candidates)} pairs"
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
        info = {"judge": spec.template, "prob_positive": prob, "threshold": rescore.threshold,
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
