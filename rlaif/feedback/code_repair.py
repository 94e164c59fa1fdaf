"""Execution-feedback repair pairs for RLCF: the policy fixes its own failing program after being told
what running it showed; a fix that passes every test beats the program it fixes.

Why: a test-gated pair between two independently sampled programs differs in everything at once
(approach, length, prose, whether the prompt's assert is copied into the program), and DPO on such
pairs teaches that style more than correctness. A repair keeps the failing answer's words and
replaces only its code block, so the chosen and the rejected text share everything but the fix, and
DPO's signal sits on the tokens that make the program right. Repairs also give pairs for problems
where none of the sampled programs passed, which test-gated pairs cannot use.

What the repairer is shown, as a second user turn after the problem and its own answer (template
``code_repair``): what the sandbox reported about loading the program (a syntax error, an exception at
import, a copied assert that fails; the program's line it names is quoted) or about the example the
problem itself shows (MBPP: its first assert; expected vs got, or the exception). A failure on a test
the problem does not show is reported by count and kind only ("passes the example shown but fails 2
of 2 other tests: wrong answer"), never with its inputs or expected values, so a fix cannot copy hidden
answers into the program.

Guarantees: all repairs are sampled in one ``generate`` call (``n = attempts`` per failing program),
each failing program with its own seed derived from the context's seed, ``"rlcf_repair"``, the task
id and the program's sample index; a prompt too long for the context is not sent and is counted.
The text that becomes the chosen answer is the one verified (the failing answer with its first code
block replaced by the repaired code), against the same tests as the candidates, in one sandbox
batch; a pair needs a fix that passes every test. Every repair is counted in :class:`RepairStats`
and its execution returned.
Non-guarantees: a fix that passes may still special-case the example shown (the other tests catch
that only as far as they cover); "only what is needed" is asked for, not checked.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlaif.code.jobs import CODE_STOP, extract_code, program_for, replace_code
from rlaif.engines.base import Engine, PromptInput, SamplingSettings
from rlaif.feedback.context import SourceContext
from rlaif.feedback.verified import Candidate, sample_candidates
from rlaif.prompts import check_template_variables, load_template
from rlaif.records import (
    CodeProblem,
    ExecutionResult,
    Message,
    PreferencePair,
    as_conversation,
    stable_hash,
)
from rlaif.tasks.code import CodeTask

STAGE = "rlcf_repair"

_STATUS_WORDS = {
    "failed": "wrong answer",
    "runtime_error": "runtime error",
    "timeout": "time limit exceeded",
    "memory_exceeded": "memory limit exceeded",
    "syntax_error": "syntax error",
}
_LOAD_LINE = re.compile(r"line (\d+): ")  # how the sandbox names the program's line in a load failure


class CodeRepairConfig(BaseModel):
    """Repair pairs: the policy fixes failing candidates after seeing what the sandbox reported."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(
        2, ge=1, description="Repairs sampled per failing program (n of one generate call)."
    )
    programs_per_problem: int = Field(
        1, ge=1, description="Failing programs repaired per problem, the closest to passing first."
    )
    problems: Literal["all", "unsolved"] = Field(
        "all",
        description="all: every problem with a failing candidate; unsolved: only problems where no "
        "sampled candidate passed (the ones test-gated pairs cannot use).",
    )
    keep_sampled_pairs: bool = Field(
        True,
        description="Keep the test-gated pairs between sampled candidates beside the repair pairs; "
        "false trains on repair pairs only.",
    )
    template: str = Field(
        "code_repair", description="Template of the repair request (a name in prompts/ or a path)."
    )
    sampling: SamplingSettings = Field(
        default_factory=lambda: SamplingSettings(temperature=0.8, top_p=0.95, max_tokens=256),
        description="Sampling of the repairs (temperature, top_p, max_tokens).",
    )

    @field_validator("template")
    @classmethod
    def _template_takes_the_report(cls, name: str) -> str:
        return check_template_variables(name, supplied=["feedback"], required=["feedback"])


class RepairStats(BaseModel):
    """Counts for one run's repairs (chunk stats add field by field)."""

    model_config = ConfigDict(extra="forbid")

    programs: int = 0
    prompt_too_long: int = 0
    repairs: int = 0
    unchanged: int = 0
    duplicates_removed: int = 0
    executions: int = 0
    passed: int = 0
    pairs: int = 0
    problems_with_pair: int = 0
    status_counts: dict[str, int] = Field(default_factory=dict)
    seconds: dict[str, float] = Field(default_factory=dict)


@dataclass
class RepairRun:
    pairs: list[PreferencePair]
    executions: list[ExecutionResult]
    stats: RepairStats = field(default_factory=RepairStats)
    repaired: set[str] = field(default_factory=set)  # task ids of the problems a repair was asked for


def _failing_line(diagnostics: str, program: str | None) -> str:
    """The program's own line a load failure names ("line 11: AssertionError: " says nothing about
    which assert), quoted from the program as it ran; empty when there is none to quote."""
    found = _LOAD_LINE.match(diagnostics)
    lines = (program or "").splitlines()
    number = int(found.group(1)) if found else 0
    quoted = lines[number - 1].strip() if 1 <= number <= len(lines) else ""
    return f"; line {number} is `{quoted}`" if quoted else ""


def visible_test_feedback(problem: CodeProblem, result: ExecutionResult, program: str | None = None) -> str:
    """What the repairer may be told about a failing run: load failures (with the line of ``program``,
    the code as it ran, that they name) and the example the problem shows in full, other tests by count
    and kind only (see the module docstring)."""
    n = result.tests_total
    failures = {f["test"]: f for f in result.metadata.get("failures", [])}
    if not result.diagnostics.startswith("test "):  # the program failed before any test ran
        status = _STATUS_WORDS.get(result.status, result.status)
        detail = result.diagnostics.rstrip().rstrip(":")
        return f"it fails while loading ({status}): {detail}{_failing_line(result.diagnostics, program)}"
    shown = problem.tests[0] if problem.source_format == "mbpp" and problem.tests else None
    if shown is not None and result.per_test and result.per_test[0] != "passed":
        detail = failures.get(0, {}).get("detail", "")
        kind = _STATUS_WORDS.get(result.per_test[0], result.per_test[0])
        return f"the example in the problem fails ({kind}): `{shown.strip()}`: {detail}".rstrip(": ")
    others = [s for i, s in enumerate(result.per_test) if s != "passed" and (shown is None or i > 0)]
    kinds = ", ".join(f"{_STATUS_WORDS.get(s, s)} x{c}" for s, c in Counter(others).items())
    total = n - 1 if shown is not None else n
    lead = "it passes the example in the problem but fails" if shown is not None else "it fails"
    return f"{lead} {len(others)} of {total} {'other ' if shown is not None else ''}tests ({kinds})"


def repair_pairs(
    task: CodeTask,
    problems: Sequence[CodeProblem],
    prompts: Sequence[PromptInput],
    candidates: dict[str, list[Candidate]],
    engine: Engine,
    config: CodeRepairConfig,
    context: SourceContext,
) -> RepairRun:
    """Repair up to ``programs_per_problem`` failing candidates of each problem and pair every
    failing program with its first passing fix (one pair per repaired program)."""
    template = load_template(config.template)
    stats = RepairStats()
    jobs: list[tuple[int, Candidate, PromptInput]] = []  # (problem position, failing candidate, request)
    for r, problem in enumerate(problems):
        cands = [c for c in candidates.get(problem.task_id, []) if c.verdict.counts]
        if config.problems == "unsolved" and any(c.verdict.passed for c in cands):
            continue
        failing = sorted((c for c in cands if not c.verdict.passed), key=lambda c: (-c.fraction, c.index))
        for cand in failing[: config.programs_per_problem]:
            feedback = visible_test_feedback(problem, cand.verdict.evidence, program_for(problem, cand.text))
            request = [
                *as_conversation(prompts[r]),
                Message(role="assistant", content=cand.text),
                Message(role="user", content=template.render(feedback=feedback).strip()),
            ]
            jobs.append((r, cand, request))
    stats.programs = len(jobs)
    repaired = {problems[r].task_id for r, _, _ in jobs}
    if not jobs:
        return RepairRun([], [], stats)
    keys = [f"{problems[r].task_id}#{c.index}" for r, c, _ in jobs]
    sampling = config.sampling.to_sampling(stop=list(CODE_STOP), include_stop=True)
    started = time.perf_counter()
    outputs, too_long, seeds = sample_candidates(
        engine, [req for _, _, req in jobs], keys, sampling, config.attempts,
        seed=context.seed, stage=STAGE, adapter=context.adapter,
    )  # fmt: skip
    stats.seconds["generate"] = round(time.perf_counter() - started, 3)
    stats.prompt_too_long = len(too_long)
    items, owners = [], []  # (problem, chosen text) to verify, and (job index, repair index) of each
    for j, ((r, cand, _), samples) in enumerate(zip(jobs, outputs, strict=True)):
        original = task.canonical(problems[r], cand.text)
        seen = {original}
        for comp in samples or []:
            stats.repairs += 1
            chosen = replace_code(cand.text, extract_code(comp.text))
            key = task.canonical(problems[r], chosen)
            if key in seen:
                stats.unchanged += key == original
                stats.duplicates_removed += key != original
                continue
            seen.add(key)
            items.append((problems[r], chosen))
            owners.append((j, comp.index))
    started = time.perf_counter()
    verdicts = task.verify_many(items, sample_indices=[o[1] for o in owners]) if items else []
    stats.seconds["verify"] = round(time.perf_counter() - started, 3)
    stats.executions = len(verdicts)
    stats.status_counts = dict(Counter(v.status for v in verdicts))
    stats.passed = sum(v.passed for v in verdicts)
    executions = []
    paired: set[int] = set()
    pairs: list[PreferencePair] = []
    for (_, chosen), (j, index), verdict in zip(items, owners, verdicts, strict=True):
        r, cand, request = jobs[j]
        if verdict.evidence is not None:
            verdict.evidence.metadata.update(repair_of=cand.index, repair_index=index)
            executions.append(verdict.evidence)
        if not verdict.passed or j in paired:
            continue
        paired.add(j)
        report = request[-1].content
        pairs.append(
            _pair(problems[r], prompts[r], cand, chosen, verdict, index, report, seeds[keys[j]], context)
        )
    stats.pairs = len(pairs)
    stats.problems_with_pair = len({p.metadata["task_id"] for p in pairs})
    return RepairRun(pairs, executions, stats, repaired)


def _pair(
    problem: CodeProblem, prompt: PromptInput, failing: Candidate, chosen: str, verdict, index: int,
    report: str, seed: int, context: SourceContext,
) -> PreferencePair:  # fmt: skip
    evidence = verdict.evidence
    return PreferencePair(
        id=stable_hash(STAGE, problem.task_id, chosen, failing.text),
        prompt=as_conversation(prompt),
        chosen=chosen,
        rejected=failing.text,
        margin=verdict.score - failing.fraction,
        source="rlcf",
        round=context.round,
        execution_ids=[
            i for i in (getattr(evidence, "id", None), getattr(failing.verdict.evidence, "id", None)) if i
        ],
        metadata={
            "task_id": problem.task_id,
            "prompt_id": problem.task_id,
            "pairing": "repair_vs_fail",
            "seed": seed,
            "repair_request": report,
            "chosen": {"repair_index": index, "status": verdict.status, "score": verdict.score},
            "rejected": {
                "sample_index": failing.index,
                "status": failing.verdict.status,
                "score": failing.fraction,
            },
        },
    )
