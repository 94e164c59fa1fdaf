"""Rewards from test execution: the verifier rewards of :mod:`rlaif.tasks.rewards` on code.

Two ways in:

- from an :class:`~rlaif.records.ExecutionResult`: :func:`binary`, :func:`fraction`, :func:`coderl`,
  :func:`rltf` (also by name in :data:`REWARDS`), for analysis of saved executions;
- as a TRL reward function: :class:`CodeReward` is :func:`rlaif.tasks.rewards.reward_function` on a
  :class:`~rlaif.tasks.code.CodeTask`, called as ``reward(completions, task_id=[...], **kwargs)``.

The values and their papers are documented in :mod:`rlaif.tasks.rewards`. A sandbox error is not the
policy's fault: every reward is ``None`` for it, never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rlaif.records import CodeProblem, ExecutionResult
from rlaif.tasks.code import CodeTask, execution_verdict
from rlaif.tasks.rewards import REWARDS as VERDICT_REWARDS
from rlaif.tasks.rewards import TaskReward, verdict_reward


def _on_execution(kind: str) -> Callable[[ExecutionResult], float | None]:
    score = VERDICT_REWARDS[kind]

    def reward(r: ExecutionResult) -> float | None:
        return score(execution_verdict(r))

    reward.__name__ = kind
    return reward


# every verifier reward, on executions: a reward added to rlaif.tasks.rewards is here too
REWARDS: dict[str, Callable[[ExecutionResult], float | None]] = {k: _on_execution(k) for k in VERDICT_REWARDS}
binary, fraction, coderl, rltf = (REWARDS[k] for k in ("binary", "fraction", "coderl", "rltf"))


def reward_fn(kind: str) -> Callable[[ExecutionResult], float | None]:
    verdict_reward(kind)  # the one "unknown reward" error
    return REWARDS[kind]


class CodeReward(TaskReward):
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
        items = list(problems.values()) if isinstance(problems, Mapping) else list(problems)
        task = CodeTask(items, pool=pool, workers=workers, limits=limits)
        task.key_column = task_id_column
        super().__init__(task, kind)
        self.__name__ = f"code_{kind}"

    @property
    def last_results(self) -> list[ExecutionResult]:
        return [v.evidence for v in self.last_verdicts if v.evidence is not None]
