"""Test-gated code preference pairs (RLCF): sample k programs per problem, run them, pair pass vs fail.

Why tests and not a judge: for code, the tests are the ground truth, and they cannot be flattered.
The candidate that passes more tests wins: a passing program is paired with a failing one; where no
candidate passes, a pair is made only when the fraction of tests passed differs by more than
``partial_margin`` (a pair between two near-equal failures teaches noise).

Guarantees:
- all problems' prompts go to the engine in ONE ``generate`` call (``n = k``), so vLLM batches them;
- every candidate program is executed (identical programs once, when ``dedup`` is on) and every
  execution is returned; each pair names its two executions and carries their status and tests
  passed as provenance;
- every problem is accounted for: it made at least one pair, or its reason is counted in
  ``stats.no_pair`` (``all_passed``, ``no_candidates``, ``single_distinct_program``,
  ``no_pass_below_margin``, ``no_passing_candidate``);
- candidates that hit a sandbox error are never paired (that is not the model's fault) and are counted.

Non-guarantee: de-duplication is exact on the program text after trimming trailing whitespace, not
semantic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from rlaif.engines.base import Engine, PromptInput, Sampling
from rlaif.errors import EngineError
from rlaif.pairs import length_summary
from rlaif.records import (
    CodeProblem,
    Completion,
    ExecutionResult,
    PreferencePair,
    as_conversation,
    stable_hash,
)

from .jobs import build_job, prepare_expected, program_for

SOURCE = "rlcf"


class CodePairConfig(BaseModel):
    """How many candidates to sample and how to pair them."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(8, ge=2, description="Candidate programs sampled per problem (in one generate call).")
    pairs_per_problem: int = Field(1, ge=1, description="Most pairs made from one problem.")
    dedup: bool = Field(True, description="Run and pair identical programs once.")
    partial_margin: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="With no passing candidate, pair two failures only when their fraction of tests "
        "passed differs by more than this; None: never pair two failures.",
    )


class CodePairStats(BaseModel):
    """Counts for one run; ``balanced`` is True when every problem is accounted for."""

    model_config = ConfigDict(extra="forbid")

    source: str = SOURCE
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

    @property
    def balanced(self) -> bool:
        return self.problems_with_pair + sum(self.no_pair.values()) == self.problems


@dataclass
class CodePairRun:
    pairs: list[PreferencePair]
    executions: list[ExecutionResult]
    stats: CodePairStats


@dataclass
class _Candidate:
    index: int
    text: str
    result: ExecutionResult

    @property
    def fraction(self) -> float:
        r = self.result
        return r.tests_passed / r.tests_total if r.tests_total else 0.0


def _dedup_key(program: str) -> str:
    return "\n".join(line.rstrip() for line in program.strip().splitlines())


def select_pairs(cands: Sequence[_Candidate], config: CodePairConfig) -> tuple[list[tuple], str]:
    """[(chosen, rejected, kind)] for one problem, or [] and the reason there is none."""
    usable = [c for c in cands if c.result.status != "sandbox_error"]
    if not usable:
        return [], "no_candidates"
    if len(usable) < 2:
        return [], "single_distinct_program"
    passing = [c for c in usable if c.result.passed]
    failing = sorted((c for c in usable if not c.result.passed), key=lambda c: (c.fraction, c.index))
    if passing and not failing:
        return [], "all_passed"
    out = []
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
    for _, _, _, a, b in options[: config.pairs_per_problem]:
        out.append((a, b, "fraction_margin"))
    return out, "" if out else "no_pass_below_margin"


def _provenance(c: _Candidate) -> dict:
    r = c.result
    return {
        "sample_index": c.index,
        "status": r.status,
        "tests_passed": r.tests_passed,
        "tests_total": r.tests_total,
    }


def build_code_pairs(
    problems: Sequence[CodeProblem],
    engine: Engine,
    pool,
    *,
    config: CodePairConfig | None = None,
    sampling: Sampling | None = None,
    adapter: str | None = None,
    render: Callable[[CodeProblem], PromptInput] | None = None,
    round: int = 0,
) -> CodePairRun:
    """Sample ``config.k`` candidates per problem, execute them in ``pool``, and pair them.

    ``sampling`` sets temperature, length and seed; its ``n`` is replaced by ``config.k``.
    ``render`` turns a problem into the engine prompt (default: ``problem.prompt`` as the user turn;
    use a prompt template file for chat models, e.g. ``lambda p: tpl.render(problem=p.prompt)``).
    """
    config = config or CodePairConfig()
    render = render or (lambda p: p.prompt)
    prompts = [render(p) for p in problems]
    outputs = _sample_candidates(prompts, engine, config, sampling, adapter)
    prepare_expected(problems, pool)
    stats = CodePairStats(problems=len(problems))
    jobs, per_problem = _candidate_jobs(problems, outputs, config, stats)
    executions = pool.run(jobs)
    stats.executions = len(executions)
    stats.status_counts = dict(Counter(r.status for r in executions))
    stats.sandbox_errors = stats.status_counts.get("sandbox_error", 0)
    pairs = _pair_problems(problems, prompts, per_problem, executions, config, stats, round)
    stats.pairs = len(pairs)
    stats.length = length_summary(pairs)
    return CodePairRun(pairs=pairs, executions=executions, stats=stats)


def _pair_problems(
    problems: Sequence[CodeProblem], prompts: list[PromptInput], per_problem: list[list[tuple[int, str, int]]],
    executions: list[ExecutionResult], config: CodePairConfig, stats: CodePairStats, round_: int,
) -> list[PreferencePair]:  # fmt: skip
    """Each problem's pairs from its executed candidates; a problem without one counts its reason."""
    pairs: list[PreferencePair] = []
    no_pair: Counter[str] = Counter()
    for problem, prompt, kept in zip(problems, prompts, per_problem, strict=True):
        cands = [_Candidate(idx, text, executions[j]) for idx, text, j in kept]
        if any(c.result.passed for c in cands):
            stats.problems_with_pass += 1
        chosen_pairs, reason = select_pairs(cands, config)
        if not chosen_pairs:
            no_pair[reason] += 1
            continue
        stats.problems_with_pair += 1
        pairs.extend(
            _pair(problem, prompt, chosen, rejected, kind, round_) for chosen, rejected, kind in chosen_pairs
        )
    stats.no_pair = dict(no_pair)
    return pairs


def _sample_candidates(
    prompts: list[PromptInput], engine: Engine, config: CodePairConfig, sampling: Sampling | None,
    adapter: str | None,
) -> list[list[Completion]]:  # fmt: skip
    """``config.k`` candidates per prompt in one ``generate`` call; a short answer is an EngineError."""
    sampling = (sampling or Sampling(temperature=0.8, top_p=0.95, max_tokens=512)).model_copy(
        update={"n": config.k}
    )
    outputs = engine.generate(prompts, sampling, adapter=adapter) if prompts else []
    if len(outputs) != len(prompts) or any(len(o) != config.k for o in outputs):
        raise EngineError(
            f"engine returned {[len(o) for o in outputs]} completions for {len(prompts)} prompts x {config.k}"
        )
    return outputs


def _candidate_jobs(
    problems: Sequence[CodeProblem],
    outputs: list[list[Completion]],
    config: CodePairConfig,
    stats: CodePairStats,
) -> tuple[list, list[list[tuple[int, str, int]]]]:
    """One sandbox job per distinct candidate (all candidates without ``dedup``), and per problem the
    kept candidates as (sample index, text, job index)."""
    jobs, per_problem = [], []
    for problem, samples in zip(problems, outputs, strict=True):
        seen: set[str] = set()
        kept = []
        for comp in samples:
            stats.candidates += 1
            key = _dedup_key(program_for(problem, comp.text))
            if config.dedup and key in seen:
                stats.duplicates_removed += 1
                continue
            seen.add(key)
            kept.append((comp.index, comp.text, len(jobs)))
            jobs.append(build_job(problem, comp.text, sample_index=comp.index))
        per_problem.append(kept)
    return jobs, per_problem


def _pair(
    problem: CodeProblem,
    prompt: PromptInput,
    chosen: _Candidate,
    rejected: _Candidate,
    kind: str,
    round_: int,
) -> PreferencePair:
    return PreferencePair(
        id=stable_hash(SOURCE, problem.task_id, chosen.text, rejected.text),
        prompt=as_conversation(prompt),
        chosen=chosen.text,
        rejected=rejected.text,
        margin=chosen.fraction - rejected.fraction,
        source=SOURCE,
        round=round_,
        execution_ids=[chosen.result.id, rejected.result.id],
        metadata={
            "task_id": problem.task_id,
            "pairing": kind,
            "chosen": _provenance(chosen),
            "rejected": _provenance(rejected),
        },
    )
