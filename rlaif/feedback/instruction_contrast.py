"""Instruction-contrast RLCD: pairs by construction for verifiable-instruction prompts.

RLCD (Yang et al. 2023) samples one prompt twice under contrasting descriptions and takes the positive
side as chosen. A 135M model ignores descriptor notes ("the reply follows every instruction" vs "the
reply ignores them" gave identical pass rates on SmolLM2-135M-Instruct), so here the contrast is in the
instruction itself:

- positive prompt: the request with its instruction, plus a reminder that restates the instruction
  (``reminder``, e.g. ``Remember: Answer in at most 20 words.``);
- negative prompt: the bare request (``metadata["task"]``), without the instruction.

The pair's prompt is the original conversation (request + instruction, no reminder); the positive
output is chosen. Nothing here checks the outputs: the verifiable-instruction checker
(:mod:`rlaif.instructions`) is the held-out metric only, and a pair's chosen reply may still break
the instruction (non-guarantee; DPO learns from the *relative* difference).

Guarantees: both sides are sampled with the same settings in one ``generate`` call; invalid outputs
are re-sampled up to ``max_retries`` times, then the prompt is dropped and counted; a prompt without
``metadata["task"]`` and ``metadata["instructions"]`` is dropped and counted as ``no_instruction``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Engine, Sampling
from rlaif.errors import RecordError
from rlaif.feedback.base import (
    FeedbackResult,
    FeedbackStats,
    OutputRules,
    coerce_config,
    finish,
    pair_id,
    sample_with_retries,
)
from rlaif.feedback.context import SourceContext, apply_context
from rlaif.instructions import describe
from rlaif.pairs import PairFilterConfig
from rlaif.records import Message, PreferencePair, PromptRecord


class InstructionContrastConfig(BaseModel):
    """Settings for :func:`instruction_contrast`."""

    model_config = ConfigDict(extra="forbid")

    reminder: str | None = Field(
        "Remember: {instruction}",
        description="Appended (after a blank line) to the positive prompt's last user turn; "
        "{instruction} is the instruction's wording. null: the positive prompt is the plain prompt.",
    )
    temperature: float = Field(0.8, ge=0.0, description="Sampling temperature for both sides.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass for both sides.")
    max_tokens: int = Field(96, ge=1, description="Maximum new tokens per output.")
    max_retries: int = Field(1, ge=0, description="Re-sample an invalid output this many times, then drop.")
    output: OutputRules = Field(default_factory=OutputRules, description="Cut markers and length limits.")
    adapter: str | None = Field(None, description="LoRA adapter of the policy (None: the base model).")
    seed: int = Field(0, description="Sampling seeds derive from it.")
    round: int = Field(0, ge=0, description="Iteration number recorded on every pair.")
    filter: PairFilterConfig = Field(default_factory=PairFilterConfig, description="Shared pair filters.")


def _with_last_user(messages: list[Message], content: str) -> list[Message]:
    msgs = [m.model_copy() for m in messages]
    last = max(i for i, m in enumerate(msgs) if m.role == "user")
    msgs[last] = Message(role="user", content=content)
    return msgs


def instruction_contrast(
    prompts: list[PromptRecord],
    engine: Engine,
    config: InstructionContrastConfig | dict | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Pairs (instruction reminded -> chosen, instruction absent -> rejected); no judge is used."""
    cfg = coerce_config(config, InstructionContrastConfig, "instruction_contrast")
    cfg = apply_context(cfg, context)  # seed/round/adapter of this call, from the run
    if not prompts:
        raise RecordError("instruction_contrast: no prompts given")
    result = FeedbackResult(
        pairs=[], stats=FeedbackStats(source="instruction_contrast", prompts_in=len(prompts))
    )
    requests, keys, plans = [], [], []
    for rec in prompts:
        task, specs = rec.metadata.get("task"), rec.metadata.get("instructions")
        if not isinstance(task, str) or not task.strip() or not specs:
            result.drop(rec.id, "no_instruction", "the prompt has no metadata 'task' and 'instructions'")
            continue
        wording = " ".join(describe(s, where=f"prompt {rec.id}") for s in specs)
        last = [m for m in rec.messages if m.role == "user"][-1].content
        positive = last if cfg.reminder is None else f"{last}\n\n{cfg.reminder.format(instruction=wording)}"
        requests += [_with_last_user(rec.messages, positive), _with_last_user(rec.messages, task)]
        keys += [f"{rec.id}:positive", f"{rec.id}:negative"]
        plans.append(rec)

    sampling = Sampling(
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, stop=cfg.output.cut_markers
    )
    sampled = sample_with_retries(
        engine, requests, sampling, cfg.output, max_retries=cfg.max_retries, seed=cfg.seed,
        stage="instruction_contrast", keys=keys, adapter=cfg.adapter, stats=result.stats,
    )  # fmt: skip
    pairs = []
    for i, rec in enumerate(plans):
        pos, neg = sampled[2 * i], sampled[2 * i + 1]
        if pos.text is None or neg.text is None:
            reasons = [s.reason for s in (pos, neg) if s.text is None]
            result.drop(rec.id, "prompt_too_long" if "prompt_too_long" in reasons else "invalid_output",
                        f"no valid output after {cfg.max_retries} retries ({', '.join(reasons)})")  # fmt: skip
            continue
        meta = {
            "prompt_id": rec.id,
            "model": engine.model_name,
            "adapter": cfg.adapter,
            "contrast": "instruction reminded vs instruction absent",
            "reminder": cfg.reminder,
            "instructions": rec.metadata["instructions"],
            "sampling": {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens},
            "seeds": {"positive": pos.seed, "negative": neg.seed},
            "attempts": {"positive": pos.attempts, "negative": neg.attempts},
            "chosen_side": "positive",
        }
        pairs.append(
            PreferencePair(
                id=pair_id("instruction_contrast", cfg.round, rec.id, pos.text, neg.text),
                prompt=rec.messages,
                chosen=pos.text,
                rejected=neg.text,
                source="instruction_contrast",
                round=cfg.round,
                metadata=meta,
            )
        )
    return finish(result, pairs, cfg.filter)


instruction_contrast.config_model = InstructionContrastConfig  # validated by the pipeline like built-ins

__all__ = ["InstructionContrastConfig", "instruction_contrast"]
