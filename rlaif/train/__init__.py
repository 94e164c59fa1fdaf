"""Training stages: SFT, DPO rounds, reward model, PPO with a critic, GRPO / RLOO. The only place TRL is used.

Entry points (each takes its config from :mod:`rlaif.train.configs` and returns a
:class:`rlaif.train.common.StageResult` whose ``policy`` is the next stage's starting point):

- :func:`rlaif.train.sft.run_sft` (SFT on prompt -> completion records, e.g. SL-CAI revisions)
- :func:`rlaif.train.dpo.run_dpo`
- :func:`rlaif.train.reward_model.train_reward_model` (+ :class:`RewardModelScorer`, :func:`score`)
- :func:`rlaif.train.ppo.run_ppo`
- :func:`rlaif.train.grpo.run_grpo`, :func:`rlaif.train.grpo.run_rloo`

Importing this package is cheap: torch/TRL load when a stage runs (names below resolve lazily).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run_dpo": "rlaif.train.dpo",
    "pair_logps": "rlaif.train.dpo",
    "train_reward_model": "rlaif.train.reward_model",
    "RewardModelScorer": "rlaif.train.reward_model",
    "score": "rlaif.train.reward_model",
    "run_ppo": "rlaif.train.ppo",
    "PPOTrainer": "rlaif.train.ppo",
    "run_grpo": "rlaif.train.grpo",
    "run_sft": "rlaif.train.sft",
    "SFTConfig": "rlaif.train.sft",
    "run_rloo": "rlaif.train.grpo",
    "StageResult": "rlaif.train.common",
    "DPOConfig": "rlaif.train.configs",
    "RewardModelConfig": "rlaif.train.configs",
    "PPOConfig": "rlaif.train.configs",
    "GRPOConfig": "rlaif.train.configs",
    "RLOOConfig": "rlaif.train.configs",
    "LoraSettings": "rlaif.train.configs",
    "PolicySpec": "rlaif.train.configs",
    "RewardSpec": "rlaif.train.configs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rlaif.train' has no attribute {name!r}")
