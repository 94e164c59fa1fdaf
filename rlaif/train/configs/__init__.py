"""Validated settings for every training stage (DPO, reward model, PPO, GRPO, RLOO).

Why pydantic and not TRL's dataclasses directly: a run config is checked in full before any model is
loaded (a typo in a YAML key is an error, not a silently ignored option), every field carries a help
text for ``rlaif train ... --help`` and the docs, and the stage modules translate these into TRL
arguments in one place. TRL options we do not model are still reachable through ``trainer_args``,
which is handed to TRL verbatim (TRL validates it; its errors become :class:`ConfigError`).

Layout: :mod:`.base` (LoRA, policy, the trainers' shared base and TRL trainer settings, reward sources),
:mod:`.preference` (DPO, reward model), :mod:`.rl` (PPO, GRPO, RLOO). Every name is re-exported here,
so ``rlaif.train.configs`` stays the one import path for callers.

Each stage has two models: ``XOptions``, what a user sets (a run validates its block against it, with
no input invented), and ``XConfig(XOptions)``, the options plus the inputs a run decides itself
(the starting policy and the data files), which a trainer and ``rlaif train`` take.

Guarantees: ``extra="forbid"`` everywhere; paths are not checked for existence here (a config may be
written before its inputs exist) but each stage checks them before loading anything.
"""

from __future__ import annotations

from rlaif.train.configs.base import (
    DEFAULT_LORA_TARGETS,
    LoraSettings,
    PolicySpec,
    RewardSpec,
    TrainerBase,
    TrainerSettings,
)
from rlaif.train.configs.preference import DPO_LOSS_TYPES, DPOConfig, DPOOptions, RewardModelConfig
from rlaif.train.configs.rl import GRPOConfig, GRPOOptions, PPOConfig, PPOOptions, RLOOConfig, RLOOOptions

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "DPO_LOSS_TYPES",
    "DPOConfig",
    "DPOOptions",
    "GRPOConfig",
    "GRPOOptions",
    "LoraSettings",
    "PPOConfig",
    "PPOOptions",
    "PolicySpec",
    "RLOOConfig",
    "RLOOOptions",
    "RewardModelConfig",
    "RewardSpec",
    "TrainerBase",
    "TrainerSettings",
]
