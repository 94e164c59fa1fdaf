"""The code task: HumanEval / MBPP / MBPP+ / native problems, verified by running their tests in the sandbox.

Guarantees: ``verify_many`` runs all its items in ONE sandbox batch (the pool parallelises them) and
computes MBPP+ expected outputs first where needed; a sandbox failure is a verdict with status
``sandbox_error`` (never a made-up pass or fail); problems found broken by :meth:`CodeTask.validate`
(their reference fails its own tests, or a body that returns None passes them) get status
``bad_problem`` without running. The task starts its own sandbox pool on first use unless given one,
and closes only a pool it started.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.code.jobs import build_job, close_code_block, prepare_expected, program_for
from rlaif.code.problems import code_prompt
from rlaif.records import CodeProblem, ExecutionResult, Message

from .base import Task, Verdict, completion_text


def execution_verdict(result: ExecutionResult) -> Verdict:
    """A sandbox execution as a verdict: the fraction of tests passed is the score."""
    score = result.tests_passed / result.tests_total if result.tests_total else 0.0
    return Verdict(result.passed, score, result.status, result.diagnostics[:500], evidence=result)


class CodeTask(Task):
    name = "code"
    key_column = "task_id"

    def __init__(
        self, problems: Sequence[CodeProblem], *, pool=None, workers: int | None = None, limits=None
    ):
        super().__init__(problems)
        self._pool, self._owns_pool = pool, pool is None
        self._workers, self._limits = workers, limits
        self.bad: dict[str, str] = {}

    def key(self, record: CodeProblem) -> str:
        return record.task_id

    def prompt(self, record: CodeProblem) -> list[Message]:
        return code_prompt(record)

    def answer(self, text: str) -> str:
        return close_code_block(text)

    def canonical(self, record: CodeProblem, text: str) -> str:
        """The program that would run (prompt + code for HumanEval), trailing whitespace trimmed."""
        return super().canonical(record, program_for(record, text))

    @property
    def pool(self):
        if self._pool is None:
            from rlaif.sandbox import SandboxPool

            self._pool = SandboxPool(workers=self._workers, limits=self._limits)
        return self._pool

    def validate(self, problems: Sequence[CodeProblem] | None = None) -> dict[str, str]:
        """Check each problem with a reference solution (see :func:`rlaif.code.validate.find_bad_problems`);
        the broken ones are remembered (their samples get ``bad_problem``) and returned with reasons."""
        from rlaif.code.validate import find_bad_problems

        found = find_bad_problems(self.records if problems is None else problems, self.pool)
        self.bad.update(found)
        return found

    def verify(self, record: CodeProblem, completion: Any) -> Verdict:
        return self.verify_many([(record, completion)])[0]

    def verify_many(
        self, items: Sequence[tuple[CodeProblem, Any]], sample_indices: Sequence[int | None] | None = None
    ) -> list[Verdict]:
        """One sandbox batch for every item whose problem is not known to be broken."""
        indices = list(sample_indices) if sample_indices is not None else list(range(len(items)))
        out: list[Verdict | None] = [None] * len(items)
        jobs, slots = [], []
        for slot, ((problem, completion), index) in enumerate(zip(items, indices, strict=True)):
            if problem.task_id in self.bad:
                out[slot] = Verdict(False, 0.0, "bad_problem", self.bad[problem.task_id])
                continue
            jobs.append((problem, completion_text(completion), index))
            slots.append(slot)
        if jobs:
            pool = self.pool
            prepare_expected(list({p.task_id: p for p, _, _ in jobs}.values()), pool)
            results = pool.run([build_job(p, text, sample_index=i) for p, text, i in jobs])
            for slot, result in zip(slots, results, strict=True):
                out[slot] = execution_verdict(result)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if self._owns_pool and self._pool is not None:
            self._pool.close()
            self._pool = None
