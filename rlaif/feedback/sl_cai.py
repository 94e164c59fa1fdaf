"""SL-CAI (Bai et al., 2022): critique -> revision chains; final revision > initial response.

The policy answers each prompt, then for ``rounds`` rounds critiques its latest answer under a
randomly drawn critique request and revises it under the matching revision request (pairs from
``prompts/cai_critique_revision_pairs.yaml``; worked examples from the same file, optional).
Outputs: SFT records (prompt -> final revision) and pairs (final revision > initial response). Every
round's principle, critique and revision is kept in the provenance.

Guarantees: each stage (initial answers, each round's critiques, each round's revisions) is one
``generate`` call plus batched retries; principle draws depend only on the seed, the prompt's
position and the round; every prompt ends as one pair or one counted drop.
Non-guarantee: a revision is not checked to be better than the original (the pair asserts it by
construction, as in the paper).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.errors import ConfigError
from rlaif.feedback.constitutional import CritiqueRevisionPrinciple, load_critique_revision_pairs
from rlaif.feedback.context import SourceContext
from rlaif.feedback.registry import feedback_source
from rlaif.feedback.resources import template_ref
from rlaif.feedback.result import FeedbackResult, SFTRecord, finish, new_result, pair_id
from rlaif.feedback.source import SourceConfig, require_prompts
from rlaif.generation.output_rules import with_template_stops
from rlaif.generation.texts import Sampled, failure, sample_with_retries
from rlaif.prompts import check_template_variables, load_template
from rlaif.records import Message, PreferencePair, PromptRecord, derive_seed, stable_hash


class SLCAIConfig(SourceConfig):
    """Settings for :func:`sl_cai`."""

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
    response: SamplingSettings = Field(
        default_factory=SamplingSettings, description="Sampling of the initial response."
    )
    critique: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=0.7), description="Sampling of critiques."
    )
    revision: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=0.7), description="Sampling of revisions."
    )
    max_retries: int = Field(
        2, ge=0, description="Re-sample invalid outputs up to this many times, then drop the prompt."
    )

    @field_validator("critique_template", "revision_template", "conversation_template")
    @classmethod
    def _template_renders(cls, name: str, info: ValidationInfo) -> str:
        return check_template_variables(name, *_TEMPLATE_VARIABLES[info.field_name])


_CRITIQUE_VARIABLES = ["conversation", "response", "critique_request", "examples"]
_TEMPLATE_VARIABLES = {  # field: (what the step supplies, what a template must show)
    "critique_template": (_CRITIQUE_VARIABLES, ["response", "critique_request"]),
    "revision_template": (
        [*_CRITIQUE_VARIABLES, "critique", "revision_request"],
        ["response", "critique", "revision_request"],
    ),
    "conversation_template": (["conversation"], ["conversation"]),
}


@dataclass
class _Chains:
    """The run's state: who is still alive, each prompt's latest answer and its chain so far."""

    prompts: list[PromptRecord]
    cfg: SLCAIConfig
    context: SourceContext
    result: FeedbackResult
    examples: list[dict[str, Any]]
    initial: list[Sampled] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)
    current: dict[int, str] = field(default_factory=dict)
    chains: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    conversations: dict[int, str] = field(default_factory=dict)

    def sample(self, engine: Engine, requests: list, settings: SamplingSettings, template: Any, stage: str,
               keys: list[int]) -> list[Sampled]:  # fmt: skip
        """One batched, retried sampling stage with the template's own stop markers."""
        rules = self.cfg.output if template is None else with_template_stops(self.cfg.output, template)
        return sample_with_retries(
            engine, requests, rules.sampling(settings), rules, max_retries=self.cfg.max_retries,
            seed=self.context.seed, stage=stage, keys=keys, adapter=self.context.adapter, stats=self.result.stats,
        )  # fmt: skip


@feedback_source(config=SLCAIConfig, writes=("pairs", "judgments", "dropped", "sft"))
def sl_cai(
    prompts: list[PromptRecord],
    engine: Engine,
    options: SLCAIConfig,
    context: SourceContext,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Critique -> revision chains. ``engine`` writes the initial responses; ``judge_engine`` (default:
    ``engine``, as in the paper) writes critiques and revisions. SFT records land in ``sft_records``."""
    require_prompts(prompts, "sl_cai")
    pset = load_critique_revision_pairs(options.principles)
    if options.few_shot > len(pset.examples):
        raise ConfigError(
            f"sl_cai: few_shot={options.few_shot} but {pset.path} has {len(pset.examples)} example(s)"
        )
    templates = {
        "critique": load_template(options.critique_template),
        "revision": load_template(options.revision_template),
        "conversation": load_template(options.conversation_template),
    }
    run = _Chains(prompts, options, context, new_result("sl_cai", prompts),
                  [e.model_dump() for e in pset.examples[: options.few_shot]])  # fmt: skip
    _initial_responses(run, engine, templates["conversation"])
    critic = judge_engine or engine
    for r in range(1, options.rounds + 1):
        drawn = {idx: _draw_principle(pset.principles, context.seed, idx, r) for idx in run.alive}
        survivors = _critiques(run, critic, templates["critique"], drawn, r)
        _revisions(run, critic, templates["revision"], drawn, survivors, r)
    provenance = {
        "model": engine.model_name,
        "critic_model": critic.model_name,
        "adapter": context.adapter,
        "principles": {"name": pset.name, "hash": pset.content_hash},
        "templates": {"critique": template_ref(templates["critique"]), "revision": template_ref(templates["revision"])},
        "few_shot": options.few_shot,
        "rounds": options.rounds,
    }  # fmt: skip
    return finish(run.result, _records(run, provenance))


def _draw_principle(
    principles: list[CritiqueRevisionPrinciple], seed: int, idx: int, round_: int
) -> CritiqueRevisionPrinciple:
    """The principle pair for the prompt at position ``idx`` in round ``round_`` (seeded)."""
    return principles[
        random.Random(derive_seed(seed, "sl_cai_principle", idx, round_)).randrange(len(principles))
    ]


def _initial_responses(run: _Chains, engine: Engine, conversation_template: Any) -> None:
    """The policy's first answers; prompts without a valid one are dropped."""
    run.initial = run.sample(engine, [p.messages for p in run.prompts], run.cfg.response, None, "sl_cai_response",
                             keys=list(range(len(run.prompts))))  # fmt: skip
    for idx, (rec, s) in enumerate(zip(run.prompts, run.initial, strict=True)):
        if s.text is None:
            run.result.drop(rec.id, *failure("invalid_response", s))
            continue
        run.alive.append(idx)
        run.current[idx] = s.text
        run.chains[idx] = []
        run.conversations[idx] = conversation_template.render(conversation=rec.messages).strip()


def _request(
    template: Any, run: _Chains, idx: int, principle: CritiqueRevisionPrinciple, **more: Any
) -> list:
    text = template.render(
        conversation=run.conversations[idx], response=run.current[idx], critique_request=principle.critique,
        examples=run.examples, **more,
    )  # fmt: skip
    return [Message(role="user", content=text.strip())]


def _critiques(run: _Chains, critic: Engine, template: Any, drawn: dict, r: int) -> list[tuple[int, Sampled]]:
    """Round ``r``'s critiques of every live prompt's latest answer; failures are dropped."""
    requests = [_request(template, run, idx, drawn[idx]) for idx in run.alive]
    critiques = run.sample(
        critic, requests, run.cfg.critique, template, f"sl_cai_critique_r{r}", keys=run.alive
    )
    survivors = []
    for idx, s in zip(run.alive, critiques, strict=True):
        if s.text is None:
            run.result.drop(run.prompts[idx].id, *failure("invalid_critique", s, r))
        else:
            survivors.append((idx, s))
    return survivors


def _revisions(
    run: _Chains, critic: Engine, template: Any, drawn: dict, survivors: list[tuple[int, Sampled]], r: int
) -> None:
    """Round ``r``'s revisions; a valid one extends the chain and becomes the latest answer."""
    requests = [
        _request(template, run, idx, drawn[idx], critique=crit.text, revision_request=drawn[idx].revision)
        for idx, crit in survivors
    ]
    keys = [idx for idx, _ in survivors]
    revisions = run.sample(critic, requests, run.cfg.revision, template, f"sl_cai_revision_r{r}", keys=keys)
    run.alive = []
    for (idx, crit), rev in zip(survivors, revisions, strict=True):
        if rev.text is None:
            run.result.drop(run.prompts[idx].id, *failure("invalid_revision", rev, r))
            continue
        run.chains[idx].append({
            "round": r, "principle_id": drawn[idx].id, "critique": crit.text, "revision": rev.text,
            "seeds": {"critique": crit.seed, "revision": rev.seed},
        })  # fmt: skip
        run.current[idx] = rev.text
        run.alive.append(idx)


def _records(run: _Chains, provenance: dict[str, Any]) -> list[PreferencePair]:
    """An SFT record (prompt -> final revision) and a pair (final revision > initial) per survivor."""
    pairs, round_ = [], run.context.round
    for idx in run.alive:
        rec, final, initial = run.prompts[idx], run.current[idx], run.initial[idx]
        meta = {
            **provenance,
            "prompt_id": rec.id,
            "chain": run.chains[idx],
            "seeds": {"response": initial.seed},
        }
        run.result.sft_records.append(
            SFTRecord(
                id=f"sl_cai-{stable_hash(str(round_), rec.id, final)}", prompt=rec.messages, completion=final,
                source="sl_cai", round=round_, metadata={**meta, "initial_response": initial.text},
            )
        )  # fmt: skip
        pairs.append(
            PreferencePair(
                id=pair_id("sl_cai", round_, rec.id, final, initial.text), prompt=rec.messages, chosen=final,
                rejected=initial.text, source="sl_cai", round=round_, metadata=meta,
            )
        )  # fmt: skip
    run.result.stats.count("sft_records", len(run.result.sft_records))
    return pairs
