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

With ``num_generations: N`` > 1 the policy judges its own positive samples (a self-rewarding step with a
contrastive-likelihood judge, as in :mod:`rlaif.judges.likelihood`): N replies are sampled with the
reminder, and the chosen one is the reply whose tokens the instruction explains best,

    contrast(y) = mean over y's tokens of [log p(token | request + instruction) - log p(token | request)]

Why: a reply that follows "answer in lowercase" is far more likely given the instruction than given
the bare request, while fluency and topic cancel in the difference. On the 400 held-out prompts,
SmolLM2's pick of 4 candidates followed its instruction 35.75% of the time against 26.0% for a random
candidate (``benchmarks/instruction_judge_agreement.py``; the checker is used there only). It needs an engine
that can score text (the in-process vLLM engine without LoRA); that is checked before anything is
sampled.

Guarantees: both sides are sampled with the same settings; invalid outputs are re-sampled up to
``max_retries`` times, then the prompt is dropped and counted (with candidates, the prompt is kept
while at least one candidate is valid; the invalid ones are counted); a prompt without
``metadata["task"]`` and ``metadata["instructions"]`` is dropped and counted as ``no_instruction``;
every candidate's seed and contrast is kept in the pair's metadata. Candidate ties go to the first.
"""

from __future__ import annotations

from pydantic import Field

from rlaif.engines.base import Engine, SamplingSettings
from rlaif.feedback.context import SourceContext
from rlaif.feedback.registry import feedback_source
from rlaif.feedback.result import FeedbackResult, finish, new_result, pair_id
from rlaif.feedback.source import SourceConfig, require_prompts
from rlaif.generation import log_prob_contrasts, require_scoring
from rlaif.generation.texts import Sampled, sample_n_with_retries, sample_with_retries
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
    num_generations: int = Field(
        1,
        ge=1,
        le=16,
        description="Positive replies sampled per prompt. Above 1, the chosen reply is the candidate with "
        "the highest contrastive likelihood of the instruction (needs an engine that scores text).",
    )

    @property
    def scores_text(self) -> bool:
        """The run checks that the policy engine can score text (no LoRA, in-process vLLM)."""
        return self.num_generations > 1


def _with_last_user(messages: list[Message], content: str) -> list[Message]:
    msgs = [m.model_copy() for m in messages]
    last = max(i for i, m in enumerate(msgs) if m.role == "user")
    msgs[last] = Message(role="user", content=content)
    return msgs


@feedback_source(config=InstructionContrastConfig)
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
    if options.num_generations > 1:
        require_scoring(engine)
    result = new_result("instruction_contrast", prompts)
    plans = [rec for rec in prompts if _has_instruction(rec, result)]
    positives, negatives = _sample_sides(plans, engine, options, context, result)
    chosen = _choose(plans, positives, engine, context) if options.num_generations > 1 else {}
    pairs = []
    for rec, cands, neg in zip(plans, positives, negatives, strict=True):
        valid = [c for c in cands if c.text is not None]
        if not valid or neg.text is None:
            reasons = [s.reason for s in [*cands, neg] if s.text is None]
            result.drop(rec.id, "prompt_too_long" if "prompt_too_long" in reasons else "invalid_output",
                        f"no valid output after {options.max_retries} retries ({', '.join(reasons)})")  # fmt: skip
            continue
        pick, contrasts = chosen.get(rec.id, (0, None))
        pairs.append(_pair(rec, valid, pick, contrasts, neg, engine, options, context))
    return finish(result, pairs)


def _sample_sides(
    plans: list[PromptRecord], engine: Engine, options: InstructionContrastConfig, context: SourceContext,
    result: FeedbackResult,
) -> tuple[list[list[Sampled]], list[Sampled]]:  # fmt: skip
    """``num_generations`` reminded replies and one bare reply per prompt, seeded by prompt and side."""
    sampling = options.output.sampling(options.sampling)
    common = dict(
        max_retries=options.max_retries, seed=context.seed, stage="instruction_contrast",
        adapter=context.adapter, stats=result.stats,
    )  # fmt: skip
    positives = sample_n_with_retries(
        engine, [_with_last_user(r.messages, _reminded(r, options)) for r in plans], sampling, options.output,
        n=options.num_generations, keys=[f"{r.id}:positive" for r in plans], **common,
    )  # fmt: skip
    negatives = sample_with_retries(
        engine, [_with_last_user(r.messages, r.metadata["task"]) for r in plans], sampling, options.output,
        keys=[f"{r.id}:negative" for r in plans], **common,
    )  # fmt: skip
    return positives, negatives


def _choose(
    plans: list[PromptRecord], positives: list[list[Sampled]], engine: Engine, context: SourceContext
) -> dict[str, tuple[int, list[float | None]]]:
    """Per prompt: the index (among its valid candidates) of the highest contrast, and every contrast.

    One :func:`~rlaif.generation.log_prob_contrasts` call scores each valid candidate under the pair's
    prompt and under the bare request; a candidate that does not fit the context scores None and is
    picked only if no candidate has a score."""
    items, owners = [], []
    for rec, cands in zip(plans, positives, strict=True):
        bare = _with_last_user(rec.messages, rec.metadata["task"])
        for c in cands:
            if c.text is not None:
                items.append((rec.messages, bare, c.text))
                owners.append(rec.id)
    contrasts: dict[str, list[float | None]] = {}
    for rec_id, contrast in zip(
        owners, log_prob_contrasts(engine, items, adapter=context.adapter), strict=True
    ):
        contrasts.setdefault(rec_id, []).append(None if contrast.value is None else round(contrast.value, 4))
    out = {}
    for rec_id, values in contrasts.items():
        ranked = [(v if v is not None else float("-inf"), -k) for k, v in enumerate(values)]
        out[rec_id] = (-max(ranked)[1], values)
    return out


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
    rec: PromptRecord, candidates: list[Sampled], pick: int, contrasts: list[float | None] | None,
    neg: Sampled, engine: Engine, cfg: InstructionContrastConfig, context: SourceContext,
) -> PreferencePair:  # fmt: skip
    pos = candidates[pick]
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
    if cfg.num_generations > 1:
        meta["candidates"] = {
            "asked": cfg.num_generations,
            "valid": len(candidates),
            "chosen": pick,
            "contrast": contrasts,
            "seeds": [c.seed for c in candidates],
            "texts": [c.text for c in candidates],
        }
    return PreferencePair(
        id=pair_id("instruction_contrast", context.round, rec.id, pos.text, neg.text), prompt=rec.messages,
        chosen=pos.text, rejected=neg.text, source="instruction_contrast", round=context.round, metadata=meta,
    )  # fmt: skip


__all__ = ["InstructionContrastConfig", "instruction_contrast"]
