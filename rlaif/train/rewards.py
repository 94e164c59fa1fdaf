"""Reward sources shared by PPO, GRPO and RLOO.

One calling convention everywhere, TRL's: ``fn(prompts=..., completions=..., **columns) -> list[float |
None]``, where for chat prompts each prompt is a list of message dicts and each completion is
``[{"role": "assistant", "content": text}]``; extra columns (a prompt record's metadata, e.g. a code
problem's tests) arrive as lists aligned with the completions. ``None`` means "no reward for this
sample": TRL turns it into NaN and skips it; our PPO leaves that sample out of the update and counts it.

Verifier rewards: :func:`verifier_reward` turns any :class:`~rlaif.tasks.base.Task` (code problems in
the sandbox, verifiable instructions) into such a function, so the final RL round can be rewarded by
the same verifier that evaluation and the verifier-gated feedback source use.

Imports run one way: this module uses :mod:`rlaif.train.reward_model` (the scorer); the scorer needs
nothing from here (``completion_text`` lives in :mod:`rlaif.tasks.base`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from rlaif.errors import RlaifError
from rlaif.plugins import import_object
from rlaif.tasks.base import Task, completion_text  # noqa: F401  (re-exported: one implementation)
from rlaif.tasks.rewards import TaskReward, reward_function
from rlaif.train.configs import RewardSpec
from rlaif.train.reward_model import RewardModelScorer

RewardFn = Callable[..., Sequence[float | None]]


def load_reward(spec: RewardSpec, *, device: str | None = None) -> RewardFn:
    """A callable for a reward spec: an imported function (kwargs bound) or a reward-model scorer."""
    if spec.reward_model is not None:
        return RewardModelScorer(spec.reward_model, device=device)
    fn = import_object(spec.function or "", "reward function")
    if spec.kwargs:
        bound = functools.partial(fn, **spec.kwargs)
        functools.update_wrapper(bound, fn)
        return bound
    return fn


def verifier_reward(task: Task, kind: str = "binary") -> TaskReward:
    """One call for the final round: ``verifier_reward(CodeTask(problems, pool=pool), "coderl")`` or
    ``verifier_reward(InstructionTask(), "binary")`` (the rollouts' ``instructions`` column is checked).
    Kinds: binary, fraction, coderl, rltf (:mod:`rlaif.tasks.rewards`); ``close()`` releases the task."""
    return reward_function(task, kind)


def reward_name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def call_reward(fn: RewardFn, prompts: list, completions: list, **columns: Any) -> list[float | None]:
    """Call a reward function and check its answer: one finite float (or None) per completion."""
    out = list(fn(prompts=prompts, completions=completions, **columns))
    if len(out) != len(completions):
        raise RlaifError(
            f"reward function {reward_name(fn)} returned {len(out)} rewards for {len(completions)} completions"
        )
    checked: list[float | None] = []
    for i, r in enumerate(out):
        if r is None:
            checked.append(None)
            continue
        value = float(r)
        if not math.isfinite(value):
            raise RlaifError(
                f"reward function {reward_name(fn)} returned a non-finite reward {r!r} at index {i}"
            )
        checked.append(value)
    return checked
