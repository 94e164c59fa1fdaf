"""New prompts by few-shot self-instruct, with near-duplicate filtering (Self-Rewarding, Wang et al.).

Each request shows ``num_examples`` prompts drawn (seeded) from the seed set and asks the policy for one
new request (``prompts/self_instruct.j2``). Outputs are cut at the template's markers, length-checked,
and dropped when their ROUGE-L F-measure against any seed prompt or any already accepted new prompt
exceeds ``max_similarity`` (self-instruct used 0.7).

Guarantees: one ``generate`` call for all requests; every request ends as one new prompt or one counted
drop (``invalid`` or ``near_duplicate``); each new prompt records the seed prompts it was shown.
Non-guarantee: new prompts are not checked for quality or safety beyond length and novelty.
"""

from __future__ import annotations

import random
import re

from pydantic import Field, field_validator

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.errors import ConfigError
from rlaif.feedback.resources import template_ref
from rlaif.feedback.source import PartialSamplingBlocks
from rlaif.generation.output_rules import OutputRules, clean_output, with_template_stops
from rlaif.generation.retry import generate_each
from rlaif.prompts import check_template_variables, load_template
from rlaif.records import Message, PromptRecord, derive_seed, stable_hash

_WORD = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure between two texts on lower-cased word tokens (0 when either is empty)."""
    x, y = _tokens(a), _tokens(b)
    if not x or not y:
        return 0.0
    prev = [0] * (len(y) + 1)
    for tx in x:
        cur = [0]
        for j, ty in enumerate(y, start=1):
            cur.append(prev[j - 1] + 1 if tx == ty else max(prev[j], cur[j - 1]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(x), lcs / len(y)
    return 2 * precision * recall / (precision + recall)


class SelfInstructConfig(PartialSamplingBlocks):
    """Settings for generating new prompts from a seed set."""

    num_prompts: int = Field(8, ge=1, description="How many new prompts to ask for (one request each).")
    num_examples: int = Field(4, ge=1, description="Seed prompts shown as examples in each request.")
    template: str = Field("self_instruct", description="Few-shot template (name in prompts/ or path).")
    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=1.0, top_p=0.9, max_tokens=96),
        description="Sampling of new prompts.",
    )
    max_similarity: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Drop a new prompt whose ROUGE-L F against a seed or accepted prompt exceeds this.",
    )
    output: OutputRules = Field(
        default_factory=lambda: OutputRules(min_chars=8),
        description="Cut markers and length limits for new prompts.",
    )
    include_seed_prompts: bool = Field(
        False,
        description="Also use the seed prompts themselves for pairs (the paper used only the new ones).",
    )

    @field_validator("template")
    @classmethod
    def _template_renders(cls, name: str) -> str:
        return check_template_variables(name, supplied=["examples"], required=["examples"])


def generate_prompts(
    seeds: list[PromptRecord],
    engine: Engine,
    cfg: SelfInstructConfig,
    *,
    seed: int,
    round_: int = 0,
    adapter: str | None = None,
) -> tuple[list[PromptRecord], dict[str, int]]:
    """New single-turn prompts and counts (requested, accepted, dropped by reason)."""
    if not seeds:
        raise ConfigError("self-instruct: no seed prompts given")
    template = load_template(cfg.template)
    rules = with_template_stops(cfg.output, template)
    k = min(cfg.num_examples, len(seeds))
    draws = [
        random.Random(derive_seed(seed, "self_instruct_examples", round_, i)).sample(range(len(seeds)), k)
        for i in range(cfg.num_prompts)
    ]
    requests = [
        [
            Message(
                role="user",
                content=template.render(examples=[seeds[j].messages[-1].content for j in shown]).strip(),
            )
        ]
        for shown in draws
    ]
    gen_seeds = [derive_seed(seed, "self_instruct", round_, i) for i in range(cfg.num_prompts)]
    base = rules.sampling(cfg.sampling)
    outputs = generate_each(
        engine, requests, [base.model_copy(update={"seed": s}) for s in gen_seeds], adapter
    )
    counts = {"self_instruct_requested": cfg.num_prompts, "self_instruct_accepted": 0,
              "self_instruct_dropped_invalid": 0, "self_instruct_dropped_near_duplicate": 0}  # fmt: skip
    known = [s.messages[-1].content for s in seeds]
    new: list[PromptRecord] = []
    for i, (shown, outs) in enumerate(zip(draws, outputs, strict=True)):
        text, _reason = clean_output(outs[0].text, rules, outs[0].finish_reason)
        nearest = max((rouge_l(text, other) for other in known), default=0.0) if text else 0.0
        if text is None or nearest > cfg.max_similarity:
            counts[
                "self_instruct_dropped_invalid" if text is None else "self_instruct_dropped_near_duplicate"
            ] += 1
            continue
        known.append(text)
        provenance = {"model": engine.model_name, "adapter": adapter, "example_ids": [seeds[j].id for j in shown],
                      "seed": gen_seeds[i], "max_rouge_l": nearest, "template": template_ref(template)}  # fmt: skip
        new.append(_new_prompt(text, i, round_, provenance))
    counts["self_instruct_accepted"] = len(new)
    return new, counts


def _new_prompt(text: str, index: int, round_: int, provenance: dict) -> PromptRecord:
    return PromptRecord(
        id=f"self_instruct-r{round_}-{index}-{stable_hash(text, length=8)}",
        messages=[Message(role="user", content=text)],
        metadata={"source": "self_instruct", "round": round_, **provenance},
    )
