"""Verifier-gated preference pairs: sample k candidates per record, verify each, passing beats failing.

The feedback source for any :class:`~rlaif.tasks.base.Task` whose completions can be checked (code
problems by their tests: RLCF, :mod:`rlaif.feedback.rlcf`; prompts with verifiable instructions:
:func:`instruction_pairs`). Why a verifier and not a judge: where a check exists, it is the ground
truth and cannot be flattered. A passing candidate is paired with a failing one; where none passes, two
failures are paired only when their scores (fraction of checks passed) differ by more than
``partial_margin`` (a pair between near-equal failures teaches noise).

Guarantees (the contract of :mod:`rlaif.feedback.source`):
- batching: every record's candidates come from ONE ``generate`` call (``n = k``);
- determinism: record ``key`` is sampled with seed ``derive_seed(context.seed, stage, key, 0)``, so
  its candidates depend on neither its batch neighbours nor the chunking;
- a prompt longer than the model's context (where the engine counts tokens) is never sent: its record
  is dropped as ``prompt_too_long``;
- every candidate is verified (identical ones once, with ``dedup``) in one ``verify_many`` batch and
  every verdict is returned; a verdict that says nothing about the candidate (sandbox error, broken
  problem) is never paired, and counted;
- accounting: every record made at least one pair, or its reason is counted in ``stats.no_pair`` and
  listed in ``dropped`` with the record's key (``all_passed``, ``no_candidates``,
  ``single_distinct_candidate``, ``no_pass_below_margin``, ``no_passing_candidate``,
  ``prompt_too_long``).
Non-guarantee: de-duplication is exact on the task's canonical text (trailing whitespace trimmed), not
semantic.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Engine, PromptInput, Sampling, SamplingSettings
from rlaif.feedback.context import DEFAULT_CONTEXT, SourceContext
from rlaif.feedback.result import DroppedPrompt, FeedbackResult
from rlaif.generation.retry import sample_until_valid
from rlaif.pairs import PairStats, length_summary
from rlaif.records import Completion, PreferencePair, PromptRecord, as_conversation, derive_seed, stable_hash
from rlaif.tasks.base import Task, Verdict


class VerifiedPairConfig(BaseModel):
    """How many candidates to sample and how to pair them."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(8, ge=2, description="Candidates sampled per record (in one generate call).")
    pairs_per_problem: int = Field(1, ge=1, description="Most pairs made from one record.")
    dedup: bool = Field(True, description="Verify and pair identical candidates once.")
    partial_margin: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="With no passing candidate, pair two failures only when their fraction of checks "
        "passed differs by more than this; None: never pair two failures.",
    )


class VerifiedPairStats(BaseModel):
    """Counts for one run; ``balanced`` is True when every record is accounted for."""

    model_config = ConfigDict(extra="forbid")

    source: str = "verified"
    problems: int = 0
    problems_with_pass: int = 0
    problems_with_pair: int = 0
    pairs: int = 0
    candidates: int = 0
    executions: int = 0
    duplicates_removed: int = 0
    sandbox_errors: int = 0
    status_counts: dict[str, int] = Field(default_factory=dict)
    no_pair: dict[str, int] = Field(default_factory=dict)
    length: dict[str, float | None] = Field(default_factory=dict)
    seconds: dict[str, float] = Field(
        default_factory=dict,
        description="Wall time per step (generate: sampling; verify: running the verifier), so that a "
        "slow run says whether the engine or the sandbox took the time.",
    )

    @property
    def balanced(self) -> bool:
        return self.problems_with_pair + sum(self.no_pair.values()) == self.problems


@dataclass
class Candidate:
    index: int
    text: str
    verdict: Verdict

    @property
    def fraction(self) -> float:
        return self.verdict.score


@dataclass
class VerifiedRun:
    pairs: list[PreferencePair]
    verdicts: list[Verdict]
    stats: VerifiedPairStats
    dropped: list[DroppedPrompt] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)  # per record key, verified


def select_pairs(cands: Sequence[Candidate], config: VerifiedPairConfig) -> tuple[list[tuple], str]:
    """[(chosen, rejected, kind)] for one record, or [] and the reason there is none."""
    usable = [c for c in cands if c.verdict.counts]
    if not usable:
        return [], "no_candidates"
    if len(usable) < 2:
        return [], "single_distinct_candidate"
    passing = [c for c in usable if c.verdict.passed]
    failing = sorted((c for c in usable if not c.verdict.passed), key=lambda c: (c.fraction, c.index))
    if passing and not failing:
        return [], "all_passed"
    if passing:
        # every passing x failing combination, most wrong failure first, spread over both sides
        combos = [(ci + ri, ci, c, r) for ci, c in enumerate(passing) for ri, r in enumerate(failing)]
        combos.sort(key=lambda t: (t[0], t[1]))
        return [(c, r, "pass_vs_fail") for _, _, c, r in combos[: config.pairs_per_problem]], ""
    if config.partial_margin is None:
        return [], "no_passing_candidate"
    options = [
        (a.fraction - b.fraction, a.index, b.index, a, b)
        for a in usable
        for b in usable
        if a.fraction - b.fraction > config.partial_margin
    ]
    options.sort(key=lambda o: (-o[0], o[1], o[2]))
    out = [(a, b, "fraction_margin") for _, _, _, a, b in options[: config.pairs_per_problem]]
    return out, "" if out else "no_pass_below_margin"


def sample_candidates(
    engine: Engine, prompts: Sequence[PromptInput], keys: Sequence[str], sampling: Sampling, k: int,
    *, seed: int, stage: str, adapter: str | None,
) -> tuple[list[list[Completion] | None], dict[int, str], dict[str, int]]:  # fmt: skip
    """``k`` candidates per prompt, each prompt with its own seed, in one generate call; prompts too
    long for the context are not sent (``None`` candidates, index -> reason in the second value)."""
    out: list[list[Completion] | None] = [None] * len(prompts)
    seeds = {key: derive_seed(seed, stage, key, 0) for key in keys}

    def samplings(pending: list[int], attempt: int) -> list[Sampling]:
        return [sampling.model_copy(update={"n": k, "seed": seeds[keys[i]]}) for i in pending]

    def take(i: int, completions: list[Completion], attempt: int) -> bool:
        out[i] = completions
        return False  # every candidate counts: a wrong program is a useful negative

    report = sample_until_valid(
        engine, prompts, samplings=samplings, take=take, max_retries=0, adapter=adapter
    )
    return out, report.too_long, seeds


def verified_pairs(
    task: Task,
    records: Sequence[Any],
    engine: Engine,
    config: VerifiedPairConfig,
    context: SourceContext,
    sampling: Sampling,
    *,
    source: str,
    prompts: Sequence[PromptInput] | None = None,
) -> VerifiedRun:
    """Sample, verify and pair; ``prompts`` overrides ``task.prompt(record)`` (a prompt template)."""
    prompts = list(prompts) if prompts is not None else [task.prompt(r) for r in records]
    keys = [task.key(r) for r in records]
    started = time.perf_counter()
    outputs, too_long, seeds = sample_candidates(
        engine, prompts, keys, sampling, config.k, seed=context.seed, stage=source, adapter=context.adapter
    )
    stats = VerifiedPairStats(source=source, problems=len(records))
    stats.seconds["generate"] = round(time.perf_counter() - started, 3)
    items, indices, per_record = _candidates(task, records, outputs, config, stats)
    started = time.perf_counter()
    verdicts = task.verify_many(items, sample_indices=indices)
    stats.seconds["verify"] = round(time.perf_counter() - started, 3)
    stats.executions = len(verdicts)
    stats.status_counts = dict(Counter(v.status for v in verdicts))
    stats.sandbox_errors = stats.status_counts.get("sandbox_error", 0)
    run = VerifiedRun(pairs=[], verdicts=verdicts, stats=stats, seeds=seeds)
    _pair_records(run, prompts, keys, per_record, too_long, config, source, context.round)
    return run


def _pair_records(
    run: VerifiedRun, prompts: list[PromptInput], keys: list[str], per_record: list[list[tuple[int, str, int]]],
    too_long: dict[int, str], config: VerifiedPairConfig, source: str, round_: int,
) -> None:  # fmt: skip
    """Each record's pairs from its verified candidates; a record without one is counted and named."""
    stats = run.stats
    no_pair: Counter[str] = Counter()
    for r, (prompt, key, kept) in enumerate(zip(prompts, keys, per_record, strict=True)):
        if r in too_long:
            no_pair["prompt_too_long"] += 1
            run.dropped.append(DroppedPrompt(prompt_id=key, reason="prompt_too_long", detail=too_long[r]))
            continue
        cands = [Candidate(idx, text, run.verdicts[j]) for idx, text, j in kept]
        run.candidates[key] = cands
        stats.problems_with_pass += any(c.verdict.passed for c in cands)
        chosen_pairs, reason = select_pairs(cands, config)
        if not chosen_pairs:
            no_pair[reason] += 1
            run.dropped.append(DroppedPrompt(prompt_id=key, reason=reason))
            continue
        stats.problems_with_pair += 1
        seed = run.seeds[key]
        run.pairs.extend(
            _pair(source, key, prompt, c, rj, kind, round_, seed) for c, rj, kind in chosen_pairs
        )
    stats.no_pair = dict(no_pair)
    stats.pairs = len(run.pairs)
    stats.length = length_summary(run.pairs)


def _candidates(
    task: Task, records: Sequence[Any], outputs: list[list[Completion] | None], config: VerifiedPairConfig,
    stats: VerifiedPairStats,
) -> tuple[list[tuple[Any, str]], list[int], list[list[tuple[int, str, int]]]]:  # fmt: skip
    """The (record, text) items to verify (distinct candidates only with ``dedup``), their sample
    indices, and per record the kept candidates as (sample index, text, item index)."""
    items: list[tuple[Any, str]] = []
    indices: list[int] = []
    per_record = []
    for record, samples in zip(records, outputs, strict=True):
        seen: set[str] = set()
        kept = []
        for comp in samples or []:
            stats.candidates += 1
            text = task.answer(comp.text)
            key = task.canonical(record, text)
            if config.dedup and key in seen:
                stats.duplicates_removed += 1
                continue
            seen.add(key)
            kept.append((comp.index, text, len(items)))
            items.append((record, text))
            indices.append(comp.index)
        per_record.append(kept)
    return items, indices, per_record


def _provenance(c: Candidate) -> dict:
    v = c.verdict
    out = {"sample_index": c.index, "status": v.status, "score": v.score}
    r = v.evidence
    if r is not None and hasattr(r, "tests_total"):
        out.update(tests_passed=r.tests_passed, tests_total=r.tests_total)
    return out


def _pair(
    source: str, key: str, prompt: PromptInput, chosen: Candidate, rejected: Candidate, kind: str, round_: int,
    seed: int,
) -> PreferencePair:  # fmt: skip
    ids = [getattr(c.verdict.evidence, "id", None) for c in (chosen, rejected)]
    return PreferencePair(
        id=stable_hash(source, key, chosen.text, rejected.text),
        prompt=as_conversation(prompt),
        chosen=chosen.text,
        rejected=rejected.text,
        margin=chosen.fraction - rejected.fraction,
        source=source,
        round=round_,
        execution_ids=[i for i in ids if i is not None],
        metadata={
            "task_id": key,
            "prompt_id": key,
            "pairing": kind,
            "seed": seed,
            "chosen": _provenance(chosen),
            "rejected": _provenance(rejected),
        },
    )


def as_feedback_result(run: VerifiedRun, engine: Engine, context: SourceContext) -> FeedbackResult:
    """The run as a :class:`FeedbackResult` (pairs_out counts records with at least one pair)."""
    for pair in run.pairs:
        pair.metadata.update(model=getattr(engine, "model_name", None), adapter=context.adapter)
    s = run.stats
    stats = PairStats(
        source=s.source,
        prompts_in=s.problems,
        pairs_out=s.problems_with_pair,
        drops=dict(s.no_pair),
        counters={"pairs": s.pairs, "executions": s.executions},
        length=s.length,
    )
    return FeedbackResult(pairs=run.pairs, stats=stats, dropped=run.dropped)


class InstructionPairsConfig(VerifiedPairConfig):
    """Verifier-gated pairs on prompts with verifiable instructions (``metadata["instructions"]``)."""

    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=256),
        description="Sampling of the candidate replies (temperature, top_p, max_tokens).",
    )


def instruction_pairs(
    prompts: list[PromptRecord],
    engine: Engine,
    options: InstructionPairsConfig | dict | None = None,
    context: SourceContext | None = None,
    *,
    judge_engine: Engine | None = None,
) -> FeedbackResult:
    """The instruction instance: replies that follow every instruction beat replies that do not.
    Usable as a plug-in source ``rlaif.feedback.verified:instruction_pairs``."""
    from rlaif.feedback.source import require_prompts
    from rlaif.tasks.instruction import InstructionTask

    require_prompts(prompts, "instruction_pairs")
    cfg = (
        InstructionPairsConfig.model_validate(options or {})
        if not isinstance(options, BaseModel)
        else options
    )
    ctx = context or DEFAULT_CONTEXT
    run = verified_pairs(
        InstructionTask(prompts), prompts, engine, cfg, ctx, cfg.sampling.to_sampling(), source="verified"
    )
    return as_feedback_result(run, engine, ctx)


instruction_pairs.config_model = InstructionPairsConfig
