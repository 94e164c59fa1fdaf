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

from pydantic import Field

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.feedback.context import SourceContext
from rlaif.feedback.result import FeedbackResult, finish, new_result, pair_id
from rlaif.feedback.sampling import Sampled, sample_with_retries
from rlaif.feedback.source import SourceConfig, require_prompts
from rlaif.instructions import describe
from rlaif.records import Message, PreferencePair, PromptRecord


class InstructionContrastConfig(SourceConfig):
    """Settings for :func:`instruction_contrast`."""

    reminder: str | None = Field(
        "Remember: {instruction}",
        description="Appended (after a blank line) to the positive prompt's last user turn; "
        "{instruction} is the instruction's wording. null: the positive prompt is the plain prompt.",
    )
    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=0.8, max_tokens=96),
        description="Sampling of both sides (same settings for both).",
    )
    max_retries: int = Field(1, ge=0, description="Re-sample an invalid output this many times, then drop.")


def _with_last_user(messages: list[Message], content: str) -> list[Message]:
    msgs = [m.model_copy() for m in messages]
    last = max(i for i, m in enumerate(msgs) if m.role == "user")
    msgs[last] = Message(role="user", content=content)
    return msgs


def instruction_contrast(
    prompts: list[PromptRecord],
    engine: Engine,
    options: InstructionContrastConfig,
    context: SourceContext,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """Pairs (instruction reminded -> chosen, instruction absent -> rejected); no judge is used."""
    require_prompts(prompts, "instruction_contrast")
    result = new_result("instruction_contrast", prompts)
    plans = [rec for rec in prompts if _has_instruction(rec, result)]
    requests, keys = [], []
    for rec in plans:
        requests += [
            _with_last_user(rec.messages, _reminded(rec, options)),
            _with_last_user(rec.messages, rec.metadata["task"]),
        ]
        keys += [f"{rec.id}:positive", f"{rec.id}:negative"]
    sampled = sample_with_retries(
        engine, requests, options.output.sampling(options.sampling), options.output,
        max_retries=options.max_retries, seed=context.seed, stage="instruction_contrast", keys=keys,
        adapter=context.adapter, stats=result.stats,
    )  # fmt: skip
    pairs = []
    for i, rec in enumerate(plans):
        pos, neg = sampled[2 * i], sampled[2 * i + 1]
        if pos.text is None or neg.text is None:
            reasons = [s.reason for s in (pos, neg) if s.text is None]
            result.drop(rec.id, "prompt_too_long" if "prompt_too_long" in reasons else "invalid_output",
                        f"no valid output after {options.max_retries} retries ({', '.join(reasons)})")  # fmt: skip
            continue
        pairs.append(_pair(rec, pos, neg, engine, options, context))
    return finish(result, pairs, options.filter)


def _has_instruction(rec: PromptRecord, result: FeedbackResult) -> bool:
    """True when the prompt carries ``metadata.task`` and ``metadata.instructions``; else a counted drop."""
    task, specs = rec.metadata.get("task"), rec.metadata.get("instructions")
    if isinstance(task, str) and task.strip() and specs:
        return True
    result.drop(rec.id, "no_instruction", "the prompt has no metadata 'task' and 'instructions'")
    return False


def _reminded(rec: PromptRecord, cfg: InstructionContrastConfig) -> str:
    """The last user turn, plus the reminder restating the prompt's instructions (if any)."""
    wording = " ".join(describe(s, where=f"prompt {rec.id}") for s in rec.metadata["instructions"])
    last = [m for m in rec.messages if m.role == "user"][-1].content
    return last if cfg.reminder is None else f"{last}\n\n{cfg.reminder.format(instruction=wording)}"


def _pair(
    rec: PromptRecord, pos: Sampled, neg: Sampled, engine: Engine, cfg: InstructionContrastConfig,
    context: SourceContext,
) -> PreferencePair:  # fmt: skip
    meta = {
        "prompt_id": rec.id,
        "model": engine.model_name,
        "adapter": context.adapter,
        "contrast": "instruction reminded vs instruction absent",
        "reminder": cfg.reminder,
        "instructions": rec.metadata["instructions"],
        "sampling": cfg.sampling.model_dump(),
        "seeds": {"positive": pos.seed, "negative": neg.seed},
        "attempts": {"positive": pos.attempts, "negative": neg.attempts},
        "chosen_side": "positive",
    }
    return PreferencePair(
        id=pair_id("instruction_contrast", context.round, rec.id, pos.text, neg.text), prompt=rec.messages,
        chosen=pos.text, rejected=neg.text, source="instruction_contrast", round=context.round, metadata=meta,
    )  # fmt: skip


instruction_contrast.config_model = InstructionContrastConfig  # validated by the pipeline like built-ins

__all__ = ["InstructionContrastConfig", "instruction_contrast"]
