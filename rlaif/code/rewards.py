"""Rewards from test execution, as plain functions (for PPO/GRPO/RLOO and for analysis).

Two ways in:

- from an :class:`~rlaif.records.ExecutionResult`: :func:`binary`, :func:`fraction`, :func:`coderl`,
  :func:`rltf` (also by name in :data:`REWARDS`);
- as a TRL reward function: :class:`CodeReward` is called as ``reward(completions, task_id=[...],
  **kwargs) -> list[float | None]`` (TRL passes the dataset's columns as keyword lists), runs the
  completions in the sandbox and scores them.

Values (CodeRL, Le et al. 2022; RLTF, Liu et al. 2023):

- ``binary``: 1 if every test passed, else 0;
- ``fraction``: tests passed / tests;
- ``coderl``: syntax error -1, runtime error (also timeout, memory, killed) -0.6, failed test -0.3,
  pass +1;
- ``rltf``: as ``coderl``, but a failed test gives -0.3 + 1.3 x fraction of tests passed.

A sandbox error is not the policy's fault: every reward is ``None`` for it (TRL treats None as
"no reward" and ignores it), never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlaif.errors import ConfigError, RlaifError
from rlaif.records import CodeProblem, ExecutionResult

_RUNTIME = {"runtime_error", "timeout", "memory_exceeded", "killed"}


def _fraction(r: ExecutionResult) -> float:
    return r.tests_passed / r.tests_total if r.tests_total else 0.0


def binary(r: ExecutionResult) -> float | None:
    if r.status == "sandbox_error":
        return None
    return 1.0 if r.passed else 0.0


def fraction(r: ExecutionResult) -> float | None:
    if r.status == "sandbox_error":
        return None
    return _fraction(r)


def coderl(r: ExecutionResult) -> float | None:
    if r.status == "sandbox_error":
        return None
    if r.status == "passed":
        return 1.0
    if r.status == "syntax_error":
        return -1.0
    if r.status in _RUNTIME:
        return -0.6
    return -0.3


def rltf(r: ExecutionResult) -> float | None:
    if r.status == "failed":
        return -0.3 + 1.3 * _fraction(r)
    return coderl(r)


REWARDS: dict[str, Callable[[ExecutionResult], float | None]] = {
    "binary": binary,
    "fraction": fraction,
    "coderl": coderl,
    "rltf": rltf,
}


def reward_fn(kind: str) -> Callable[[ExecutionResult], float | None]:
    try:
        return REWARDS[kind]
    except KeyError:
        raise ConfigError(f"unknown code reward {kind!r} (known: {', '.join(REWARDS)})") from None


def completion_text(completion: Any) -> str:
    """TRL gives plain strings, or conversations (the last assistant turn's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise RlaifError(f"cannot read a completion of type {type(completion).__name__}")


class CodeReward:
    """A TRL-style reward function that executes completions against their problem's tests.

    ``problems``: the tasks, by id (the training dataset needs a ``task_id`` column, or name another
    with ``task_id_column``). The sandbox pool is created on first use (or pass your own) and closed
    by :meth:`close`. ``last_results`` keeps the latest batch's execution records for logging.
    """

    def __init__(
        self,
        problems: Sequence[CodeProblem] | Mapping[str, CodeProblem],
        kind: str = "coderl",
        *,
        pool=None,
        workers: int | None = None,
        limits=None,
        task_id_column: str = "task_id",
    ):
        self.score = reward_fn(kind)
        self.__name__ = f"code_{kind}"
        self.problems = dict(problems) if isinstance(problems, Mapping) else {p.task_id: p for p in problems}
        self.task_id_column = task_id_column
        self._pool, self._owns_pool = pool, pool is None
        self._workers, self._limits = workers, limits
        self.last_results: list[ExecutionResult] = []

    @property
    def pool(self):
        if self._pool is None:
            from rlaif.sandbox import SandboxPool

            self._pool = SandboxPool(workers=self._workers, limits=self._limits)
            from rlaif.code.jobs import prepare_expected

            prepare_expected(list(self.problems.values()), self._pool)
        return self._pool

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        from rlaif.code.jobs import build_job

        ids = kwargs.get(self.task_id_column)
        if ids is None or len(ids) != len(completions):
            raise RlaifError(
                f"code reward needs a '{self.task_id_column}' column with one id per completion "
                f"(got {None if ids is None else len(ids)} for {len(completions)} completions)"
            )
        pool = self.pool  # created (and MBPP+ expected outputs computed) before any job is built
        jobs = []
        for i, (tid, comp) in enumerate(zip(ids, completions, strict=True)):
            problem = self.problems.get(str(tid))
            if problem is None:
                raise RlaifError(f"code reward: unknown task_id {tid!r} (completion {i})")
            jobs.append(build_job(problem, completion_text(comp), sample_index=i))
        self.last_results = pool.run(jobs)
        return [self.score(r) for r in self.last_results]

    def close(self) -> None:
        if self._owns_pool and self._pool is not None:
            self._pool.close()
            self._pool = None
