"""Reward sources shared by PPO, GRPO and RLOO.

One calling convention everywhere, TRL's: ``fn(prompts=..., completions=..., **columns) -> list[float |
None]``, where for chat prompts each prompt is a list of message dicts and each completion is
``[{"role": "assistant", "content": text}]``; extra columns (a prompt record's metadata, e.g. a code
problem's tests) arrive as lists aligned with the completions. ``None`` means "no reward for this
sample": TRL turns it into NaN and skips it; our PPO leaves that sample out of the update and counts it.

Imports run one way: this module uses :mod:`rlaif.train.reward_model` (the scorer); the scorer needs
nothing from here (``completion_text`` lives in :mod:`rlaif.code.rewards`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from rlaif.code.rewards import completion_text  # noqa: F401  (re-exported: one implementation)
from rlaif.errors import RlaifError
from rlaif.plugins import import_object
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
