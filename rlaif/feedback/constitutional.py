"""Constitutional AI feedback (Bai et al., 2022): SL-CAI critique -> revision chains and RL-CAI labels.

SL-CAI (:func:`sl_cai`): the policy answers each prompt, then for ``rounds`` rounds critiques its latest
answer under a randomly drawn critique request and revises it under the matching revision request
(pairs from ``prompts/cai_critique_revision_pairs.yaml``; worked examples from the same file, optional).
Outputs: SFT records (prompt -> final revision) and pairs (final revision > initial response). Every
round's principle, critique and revision is kept in the provenance.

RL-CAI (:func:`rl_cai`): two samples per prompt, labelled by the principle-conditioned multiple-choice
judge (:class:`rlaif.judges.PrincipleJudge`, one principle sampled per comparison). Soft labels are the
normalised choice probabilities, clamped where asked; chain-of-thought labels are near 0/1 and are
clamped to [0.4, 0.6] by default.

Guarantees: each stage (initial answers, each round's critiques, each round's revisions, samples,
judging) is one ``generate`` call plus batched retries; principle draws depend only on the seed, the
prompt's position and the round; every prompt ends as one pair or one counted drop.
Non-guarantee: a revision is not checked to be better than the original (the pair asserts it by
construction, as in the paper).
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Engine, Sampling
from rlaif.errors import ConfigError, RecordError
from rlaif.feedback.base import (
    FeedbackResult,
    FeedbackStats,
    OutputRules,
    PerRequestSeeds,
    Sampled,
    SFTRecord,
    coerce_config,
    derive_seed,
    finish,
    judge_kwargs,
    pair_id,
    require_str,
    resolve_resource,
    sample_n_with_retries,
    sample_with_retries,
    template_ref,
)
from rlaif.feedback.context import SourceContext, apply_context
from rlaif.files import load_yaml_mapping
from rlaif.pairs import PairFilterConfig
from rlaif.records import Message, PreferencePair, PromptRecord, stable_hash


class CritiqueRevisionPrinciple(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    critique: str
    revision: str


class CritiqueRevisionExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    response: str
    critique_request: str
    critique: str
    revision_request: str
    revision: str


class CritiqueRevisionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    principles: list[CritiqueRevisionPrinciple]
    examples: list[CritiqueRevisionExample]
    path: str
    content_hash: str


def load_critique_revision_pairs(spec: str) -> CritiqueRevisionSet:
    """Load ``principles: [{id, critique, revision}]`` and optional ``examples``; a missing or empty
    field is an error naming the file, the entry and the field."""
    path, content_hash = resolve_resource(spec)
    raw = load_yaml_mapping(path, "prompt resource")
    unknown = set(raw) - {"name", "description", "principles", "examples"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown field(s) {sorted(unknown)} (expected name, description, principles, examples)"
        )
    entries = raw.get("principles")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{path}: field 'principles' must be a non-empty list of {{id, critique, revision}}"
        )
    principles, seen = [], set()
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: principles[{i}]"
        fields = {k: require_str(entry, k, where) for k in ("id", "critique", "revision")}
        extra = set(entry) - set(fields)
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}")
        if fields["id"] in seen:
            raise ConfigError(f"{where}: duplicate id '{fields['id']}'")
        seen.add(fields["id"])
        principles.append(CritiqueRevisionPrinciple(**fields))
    examples = []
    raw_examples = raw.get("examples") or []
    if not isinstance(raw_examples, list):
        raise ConfigError(f"{path}: field 'examples' must be a list")
    for i, entry in enumerate(raw_examples, start=1):
        where = f"{path}: examples[{i}]"
        keys = list(CritiqueRevisionExample.model_fields)
        fields = {k: require_str(entry, k, where) for k in keys}
        extra = set(entry) - set(keys)
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}")
        examples.append(CritiqueRevisionExample(**fields))
    return CritiqueRevisionSet(
        name=str(raw.get("name") or path.stem), principles=principles, examples=examples,
        path=str(path), content_hash=content_hash,
    )  # fmt: skip


class GenSettings(BaseModel):
    """Sampling for one generation step."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(128, ge=1, description="Maximum new tokens.")

    def sampling(self, rules: OutputRules, extra_stop: list[str] | None = None) -> Sampling:
        stop = list(dict.fromkeys([*rules.cut_markers, *(extra_stop or [])]))
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, stop=stop)


class SLCAIConfig(BaseModel):
    """Settings for :func:`sl_cai`."""

    model_config = ConfigDict(extra="forbid")

    principles: str = Field(
        "cai_critique_revision_pairs",
        description="Critique/revision pairs: a name in prompts/ or a YAML path.",
    )
    rounds: int = Field(1, ge=1, description="Critique -> revision rounds (R); each draws a principle pair.")
    few_shot: int = Field(
        2, ge=0, description="Worked examples from the principles file shown in each request (0: none)."
    )
    critique_template: str = Field("cai_critique", description="Template for critique requests.")
    revision_template: str = Field("cai_revision", description="Template for revision requests.")
    conversation_template: str = Field(
        "conversation_transcript", description="How the conversation is shown inside the requests."
    )
    response: GenSettings = Field(
        default_factory=GenSettings, description="Sampling of the initial response."
    )
    critique: GenSettings = Field(
        default_factory=lambda: GenSettings(temperature=0.7), description="Sampling of critiques."
    )
    revision: GenSettings = Field(
        default_factory=lambda: GenSettings(temperature=0.7), description="Sampling of revisions."
    )
    max_retries: int = Field(
        2, ge=0, description="Re-sample invalid outputs up to this many times, then drop the prompt."
    )
    output: OutputRules = Field(
        default_factory=OutputRules, description="Cut markers and length limits for every output."
    )
    adapter: str | None = Field(
        None, description="LoRA adapter directory of the policy (None: the base model)."
    )
    seed: int = Field(0, description="Global seed: principle draws and sampling seeds derive from it.")
    round: int = Field(0, ge=0, description="Iteration number recorded on every pair.")
    filter: PairFilterConfig = Field(default_factory=PairFilterConfig, description="Shared pair filters.")


def sl_cai(
    prompts: list[PromptRecord],
    engine: Engine,
    config: SLCAIConfig | dict | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Critique -> revision chains. ``engine`` writes the initial responses; ``judge_engine`` (default:
    ``engine``, as in the paper) writes critiques and revisions. SFT records land in ``sft_records``."""
    from rlaif.prompts import load_template

    cfg = coerce_config(config, SLCAIConfig, "sl_cai")
    cfg = apply_context(cfg, context)  # seed/round/adapter of this call, from the run
    if not prompts:
        raise RecordError("sl_cai: no prompts given")
    pset = load_critique_revision_pairs(cfg.principles)
    if cfg.few_shot > len(pset.examples):
        raise ConfigError(
            f"sl_cai: few_shot={cfg.few_shot} but {pset.path} has {len(pset.examples)} example(s)"
        )
    examples = [e.model_dump() for e in pset.examples[: cfg.few_shot]]
    crit_tpl, rev_tpl = load_template(cfg.critique_template), load_template(cfg.revision_template)
    conv_tpl = load_template(cfg.conversation_template)
    critic = judge_engine or engine
    result = FeedbackResult(pairs=[], stats=FeedbackStats(source="sl_cai", prompts_in=len(prompts)))
    common = dict(max_retries=cfg.max_retries, adapter=cfg.adapter, stats=result.stats)

    initial = sample_with_retries(
        engine, [p.messages for p in prompts], cfg.response.sampling(cfg.output), cfg.output,
        seed=cfg.seed, stage="sl_cai_response", **common,
    )  # fmt: skip
    alive = []
    for idx, (rec, s) in enumerate(zip(prompts, initial, strict=True)):
        if s.text is None:
            result.drop(rec.id, *_failure("invalid_response", s))
        else:
            alive.append(idx)
    current = {idx: initial[idx].text for idx in alive}
    chains: dict[int, list[dict[str, Any]]] = {idx: [] for idx in alive}
    conversations = {idx: conv_tpl.render(conversation=prompts[idx].messages).strip() for idx in alive}

    for r in range(1, cfg.rounds + 1):
        drawn = {
            idx: pset.principles[
                random.Random(derive_seed(cfg.seed, "sl_cai_principle", idx, r)).randrange(
                    len(pset.principles)
                )
            ]
            for idx in alive
        }
        crit_requests = [
            [Message(role="user", content=crit_tpl.render(
                conversation=conversations[idx], response=current[idx], critique_request=drawn[idx].critique,
                examples=examples).strip())]
            for idx in alive
        ]  # fmt: skip
        crit_rules = _rules(cfg.output, crit_tpl)
        critiques = sample_with_retries(
            critic, crit_requests, cfg.critique.sampling(crit_rules), crit_rules,
            seed=cfg.seed, stage=f"sl_cai_critique_r{r}", keys=alive, **common,
        )  # fmt: skip
        survivors = []
        for idx, s in zip(alive, critiques, strict=True):
            if s.text is None:
                result.drop(prompts[idx].id, *_failure("invalid_critique", s, r))
            else:
                survivors.append((idx, s))
        rev_requests = [
            [Message(role="user", content=rev_tpl.render(
                conversation=conversations[idx], response=current[idx], critique_request=drawn[idx].critique,
                critique=s.text, revision_request=drawn[idx].revision, examples=examples).strip())]
            for idx, s in survivors
        ]  # fmt: skip
        rev_rules = _rules(cfg.output, rev_tpl)
        revisions = sample_with_retries(
            critic, rev_requests, cfg.revision.sampling(rev_rules), rev_rules,
            seed=cfg.seed, stage=f"sl_cai_revision_r{r}", keys=[idx for idx, _ in survivors], **common,
        )  # fmt: skip
        alive = []
        for (idx, crit), rev in zip(survivors, revisions, strict=True):
            if rev.text is None:
                result.drop(prompts[idx].id, *_failure("invalid_revision", rev, r))
                continue
            chains[idx].append({
                "round": r, "principle_id": drawn[idx].id, "critique": crit.text, "revision": rev.text,
                "seeds": {"critique": crit.seed, "revision": rev.seed},
            })  # fmt: skip
            current[idx] = rev.text
            alive.append(idx)

    provenance_base = {
        "model": engine.model_name,
        "critic_model": critic.model_name,
        "adapter": cfg.adapter,
        "principles": {"name": pset.name, "hash": pset.content_hash},
        "templates": {"critique": template_ref(crit_tpl), "revision": template_ref(rev_tpl)},
        "few_shot": cfg.few_shot,
        "rounds": cfg.rounds,
    }
    pairs = []
    for idx in alive:
        rec = prompts[idx]
        meta = {
            **provenance_base,
            "prompt_id": rec.id,
            "chain": chains[idx],
            "seeds": {"response": initial[idx].seed},
        }
        result.sft_records.append(
            SFTRecord(
                id=f"sl_cai-{stable_hash(str(cfg.round), rec.id, current[idx])}", prompt=rec.messages,
                completion=current[idx], source="sl_cai", round=cfg.round,
                metadata={**meta, "initial_response": initial[idx].text},
            )
        )  # fmt: skip
        pairs.append(
            PreferencePair(
                id=pair_id("sl_cai", cfg.round, rec.id, current[idx], initial[idx].text), prompt=rec.messages,
                chosen=current[idx], rejected=initial[idx].text, source="sl_cai", round=cfg.round, metadata=meta,
            )
        )  # fmt: skip
    result.stats.count("sft_records", len(result.sft_records))
    return finish(result, pairs, cfg.filter)


def _failure(reason: str, s: Sampled, round_: int | None = None) -> tuple[str, str]:
    """Drop reason and detail for a request that yielded no valid text."""
    where = f"round {round_}: " if round_ is not None else ""
    if s.reason == "prompt_too_long":
        return "prompt_too_long", where + s.raw
    return reason, f"{where}{s.reason} after {s.attempts} attempt(s)"


def _rules(base: OutputRules, template: Any) -> OutputRules:
    """The template may declare extra cut markers (``metadata.stop``) for its own format."""
    extra = template.metadata.get("stop") or []
    if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
        raise ConfigError(f"template '{template.name}': metadata.stop must be a list of strings")
    return base.model_copy(update={"cut_markers": list(dict.fromkeys([*base.cut_markers, *extra]))})


class RLCAIConfig(BaseModel):
    """Settings for :func:`rl_cai`."""

    model_config = ConfigDict(extra="forbid")

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
    response: GenSettings = Field(default_factory=GenSettings, description="Sampling of the two responses.")
    max_retries: int = Field(
        2, ge=0, description="Re-sample invalid responses up to this many times, then drop."
    )
    output: OutputRules = Field(
        default_factory=OutputRules, description="Cut markers and length limits for responses."
    )
    adapter: str | None = Field(
        None, description="LoRA adapter directory of the policy (None: the base model)."
    )
    judge_adapter: str | None = Field(
        None, description="LoRA adapter for the feedback model (None: its base model)."
    )
    judge_template: str = Field(
        "cai_principle_choice", description="Principle judge template (run: judge.template)."
    )
    judge_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for PrincipleJudge."
    )
    seed: int = Field(
        0, description="Global seed: sampling seeds and the judge's principle draws derive from it."
    )
    round: int = Field(0, ge=0, description="Iteration number recorded on every pair.")
    filter: PairFilterConfig = Field(default_factory=PairFilterConfig, description="Shared pair filters.")

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


def rl_cai(
    prompts: list[PromptRecord],
    engine: Engine,
    config: RLCAIConfig | dict | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Two policy samples per prompt, labelled by the principle judge on ``judge_engine`` (default: the
    policy engine). Pair margin = 2 * soft_label - 1 (the gap between the two normalised probabilities)."""
    from rlaif.judges import PrincipleJudge

    cfg = coerce_config(config, RLCAIConfig, "rl_cai")
    cfg = apply_context(cfg, context)  # seed/round/adapter of this call, from the run
    if not prompts:
        raise RecordError("rl_cai: no prompts given")
    clamp = cfg.effective_clamp()
    result = FeedbackResult(pairs=[], stats=FeedbackStats(source="rl_cai", prompts_in=len(prompts)))
    samples = sample_n_with_retries(
        engine, [p.messages for p in prompts], cfg.response.sampling(cfg.output), cfg.output, n=2,
        max_retries=cfg.max_retries, seed=cfg.seed, stage="rl_cai_response", adapter=cfg.adapter, stats=result.stats,
    )  # fmt: skip
    todo = []
    for rec, (a, b) in zip(prompts, samples, strict=True):
        if a.text is None or b.text is None:
            result.drop(rec.id, *_failure("invalid_response", a if a.text is None else b))
        elif a.text == b.text:
            result.drop(rec.id, "identical_samples", "both samples are the same text")
        else:
            todo.append((rec, a, b))

    judge_opts = dict(cfg.judge_options)  # judge_options.template: the older spelling of judge_template
    if "template" in judge_opts and "judge_template" in cfg.model_fields_set:
        raise ConfigError("rl_cai: set the judge template once (judge_template or judge_options.template)")
    judge_opts.setdefault("template", cfg.judge_template)
    judge = PrincipleJudge(
        PerRequestSeeds(judge_engine or engine), principles=cfg.principles, chain_of_thought=cfg.chain_of_thought,
        clamp=clamp, seed=cfg.seed, adapter=cfg.judge_adapter,
        **judge_kwargs(judge_opts, ("principles", "chain_of_thought", "clamp", "seed", "adapter"), "rl_cai"),
    )  # fmt: skip
    verdicts = (
        judge.compare(
            [(rec.messages, a.text, b.text) for rec, a, b in todo], ids=[rec.id for rec, _, _ in todo]
        )
        if todo
        else []
    )
    pairs = []
    for (rec, a, b), verdict in zip(todo, verdicts, strict=True):
        result.judgments.extend(verdict.judgments)
        if verdict.prob_a is None:
            result.stats.count("invalid_judgments", len(verdict.judgments))
            result.drop(rec.id, "invalid_judgment", "the judge's output could not be parsed")
            continue
        label = soft_label(verdict.prob_a, clamp)
        if label is None:
            result.drop(rec.id, "tie", "P(A) = P(B) = 0.5")
            continue
        side, p = label
        chosen, rejected = (a, b) if side == "a" else (b, a)
        principle_ids = [j.principle for j in verdict.judgments if j.principle]
        meta = {
            "prompt_id": rec.id,
            "model": engine.model_name,
            "judge_model": (judge_engine or engine).model_name,
            "adapter": cfg.adapter,
            "judge_adapter": cfg.judge_adapter,
            "principles": principle_ids,
            "principles_file": cfg.principles,
            "chain_of_thought": cfg.chain_of_thought,
            "clamp": list(clamp) if clamp else None,
            "prob_a": verdict.prob_a,
            "consistent": verdict.consistent,
            "chosen_sample": side,
            "seeds": {"chosen": chosen.seed, "rejected": rejected.seed},
            "sampling": cfg.response.model_dump(),
        }
        pairs.append(
            PreferencePair(
                id=pair_id("rl_cai", cfg.round, rec.id, chosen.text, rejected.text), prompt=rec.messages,
                chosen=chosen.text, rejected=rejected.text, soft_label=p, margin=2 * p - 1, source="rl_cai",
                round=cfg.round, judgment_ids=[j.id for j in verdict.judgments], metadata=meta,
            )
        )  # fmt: skip
    return finish(result, pairs, cfg.filter)
