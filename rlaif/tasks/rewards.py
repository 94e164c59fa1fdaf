"""One verifier reward: any :class:`~rlaif.tasks.base.Task` as a TRL-style reward function.

``reward_function(task, kind)`` returns a callable ``reward(prompts=..., completions=..., **columns)
-> list[float | None]`` (TRL's convention; our PPO uses the same). Each rollout's record is found from
the columns (:meth:`Task.reward_record`: the code task looks up ``task_id``, the instruction task reads
the rollout's own ``instructions``), all rollouts of a call are verified in one ``verify_many`` batch,
and the verdict is mapped by ``kind``:

- ``binary``: 1 if the completion passed, else 0;
- ``fraction``: the verdict's score (tests passed / tests, instructions followed / instructions);
- ``coderl`` (Le et al. 2022): syntax error -1, runtime error (also timeout, memory, killed) -0.6,
  other failure -0.3, pass +1;
- ``rltf`` (Liu et al. 2023): as ``coderl``, but a failure gives -0.3 + 1.3 x score.

A verdict that says nothing about the completion (sandbox error, broken problem) gives ``None`` (TRL
skips it; our PPO leaves the sample out and counts it), never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rlaif.errors import ConfigError

from .base import Task, Verdict

_RUNTIME = {"runtime_error", "timeout", "memory_exceeded", "killed"}


def binary(v: Verdict) -> float | None:
    return (1.0 if v.passed else 0.0) if v.counts else None


def fraction(v: Verdict) -> float | None:
    return v.score if v.counts else None


def coderl(v: Verdict) -> float | None:
    if not v.counts:
        return None
    if v.passed:
        return 1.0
    if v.status == "syntax_error":
        return -1.0
    return -0.6 if v.status in _RUNTIME else -0.3


def rltf(v: Verdict) -> float | None:
    if v.status == "failed":
        return -0.3 + 1.3 * v.score
    return coderl(v)


REWARDS: dict[str, Callable[[Verdict], float | None]] = {
    "binary": binary,
    "fraction": fraction,
    "coderl": coderl,
    "rltf": rltf,
}


def verdict_reward(kind: str) -> Callable[[Verdict], float | None]:
    try:
        return REWARDS[kind]
    except KeyError:
        raise ConfigError(f"unknown verifier reward {kind!r} (known: {', '.join(REWARDS)})") from None


class TaskReward:
    """The reward function of :func:`reward_function`; ``last_verdicts`` keeps the latest batch's
    verdicts for logging; ``close`` releases the task's verifier (a sandbox pool it started)."""

    def __init__(self, task: Task, kind: str = "binary"):
        self.task, self.kind, self.score = task, kind, verdict_reward(kind)
        self.__name__ = f"{task.name}_{kind}"
        self.last_verdicts: list[Verdict] = []

    def __call__(self, completions: Sequence[Any], prompts: Sequence[Any] | None = None, **columns: Any):
        if prompts is not None:
            columns.setdefault("prompts", prompts)  # the instruction task reads each rollout's request
        records = [self.task.reward_record(i, columns) for i in range(len(completions))]
        self.last_verdicts = self.task.verify_many(list(zip(records, completions, strict=True)))
        return [self.score(v) for v in self.last_verdicts]

    def close(self) -> None:
        self.task.close()


def reward_function(task: Task, kind: str = "binary") -> TaskReward:
    """A TRL-style reward function that verifies each rollout with ``task`` and maps it by ``kind``."""
    return TaskReward(task, kind)
