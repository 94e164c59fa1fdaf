"""Setting up a PPO run (:class:`rlaif.train.ppo.PPOTrainer`): prompts, reward, the models and their
optimisers, the EOS ids, the KL controller and the rollout engine.

Why apart from the trainer: the set-up decides the roles and their precision once; the iteration code
then only moves tensors between them.

Guarantees: every model is built in fp32 with dropout off; with LoRA the reference is the actor with
its adapter disabled (no second copy, ``ref_model`` is None), with full fine-tuning a frozen fp32 copy
on the accelerator's device; the critic starts from ``critic_model``, else the reward model, else the
starting policy. Configuration errors (no prompts, no reward, an engine on the wrong base) are
ConfigErrors raised before any training. Non-guarantee: an engine passed in is not checked to serve
the same weights as the actor's base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlaif.engines.base import Engine
from rlaif.errors import ConfigError
from rlaif.records import PromptRecord, iter_json_lines
from rlaif.train import ppo_math as pm
from rlaif.train.common import load_prompt_records, prompt_rows
from rlaif.train.configs import PPOConfig
from rlaif.train.critic import load_critic
from rlaif.train.models import disable_dropout, load_causal_lm, peft_lora_config
from rlaif.train.rewards import RewardFn, load_reward


def read_ptx_texts(path: Path) -> list[str]:
    """Documents for the pretraining-mix loss: ``text`` fields of a JSONL file, or a text file's lines."""
    if path.suffix in (".jsonl", ".gz"):
        texts = []
        for lineno, obj in iter_json_lines(path):
            if not isinstance(obj.get("text"), str):
                raise ConfigError(f"{path}:{lineno}: ptx record needs a string field 'text'")
            texts.append(obj["text"])
    elif path.is_file():
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ConfigError(f"ptx_data: file not found: {path}")
    if not texts:
        raise ConfigError(f"ptx_data: no text in {path}")
    return texts


def sharded_prompt_rows(
    cfg: PPOConfig, prompts: list[PromptRecord] | None, rank: int, world_size: int
) -> list[dict[str, Any]]:
    """This process's prompt rows (every ``world_size``-th from ``rank``): given records or cfg.prompts."""
    records = prompts if prompts is not None else load_prompt_records(cfg.prompts) if cfg.prompts else None
    if not records:
        raise ConfigError("ppo: no prompts (set `prompts` files or pass prompts=)")
    return prompt_rows(records)[rank::world_size]


def configured_reward(cfg: PPOConfig, reward_fn: RewardFn | None, device: str) -> RewardFn:
    """The callable passed in, else the config's reward source (a reward model is loaded on ``device``)."""
    if reward_fn is not None:
        return reward_fn
    if cfg.reward is None:
        raise ConfigError("ppo: no reward (set `reward` or pass reward_fn=)")
    return load_reward(cfg.reward, device=device)


@dataclass
class PPOModels:
    """The roles after ``accelerator.prepare``; ``ref_model`` is None with LoRA (adapter disabled)."""

    actor: Any
    critic: Any
    actor_opt: Any
    critic_opt: Any
    ref_model: Any = None


def _adamw(model, lr: float):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, foreach=True)


def build_models(cfg: PPOConfig, base: Path, tokenizer, accelerator) -> PPOModels:
    """Actor (LoRA or full) and reference on ``base``, the critic, their AdamW optimisers, prepared."""
    actor = load_causal_lm(base, torch.float32)
    ref_model = None
    if cfg.lora is not None:
        from peft import get_peft_model

        actor = get_peft_model(actor, peft_lora_config(cfg.lora.model_copy(update={"dropout": 0.0})))
    else:
        # fp32 like the actor and run under its autocast: at step 0 both compute the same numbers
        ref_model = load_causal_lm(base, torch.float32).to(accelerator.device).eval()
        ref_model.requires_grad_(False)
    disable_dropout(actor)
    critic_path = cfg.critic_model or (cfg.reward.reward_model if cfg.reward else None) or base
    critic = load_critic(critic_path, cfg.critic_lora, tokenizer.pad_token_id, torch.float32)
    actor_opt = _adamw(actor, cfg.learning_rate)
    critic_opt = _adamw(critic, cfg.critic_learning_rate or cfg.learning_rate)
    actor, critic, actor_opt, critic_opt = accelerator.prepare(actor, critic, actor_opt, critic_opt)
    actor.eval()  # no dropout anywhere; gradients still flow in eval mode
    critic.eval()
    return PPOModels(actor, critic, actor_opt, critic_opt, ref_model)


def eos_token_ids(tokenizer, actor) -> list[int]:
    """The tokenizer's EOS plus the generation config's (chat models may end a turn with another id)."""
    gen_eos = getattr(actor.generation_config, "eos_token_id", None)
    eos_ids = {tokenizer.eos_token_id}
    eos_ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    return sorted(i for i in eos_ids if i is not None)


def kl_controller(cfg: PPOConfig):
    """Adaptive (Ziegler et al. 2019) or fixed beta of the per-token KL penalty."""
    if cfg.adaptive_kl:
        return pm.AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    return pm.FixedKLController(cfg.kl_coef)


def rollout_engine(
    cfg: PPOConfig,
    base: Path,
    engine: Engine | None,
    engine_factory: Callable[[Path], Engine] | None,
    world_size: int,
) -> tuple[Engine | None, bool]:
    """(engine, owned): the engine that samples rollouts, and whether the trainer must close it.

    An engine passed in must serve ``cfg.policy.path``; once a starting adapter was merged into
    ``base`` only ``engine_factory(base)`` can give an engine on the right model.
    """
    if cfg.rollout != "engine":
        return engine, False
    if world_size > 1:
        raise ConfigError("ppo: rollout='engine' runs in one process; use rollout='hf' with accelerate")
    merged = base != Path(cfg.policy.path)
    if merged and engine is not None and engine_factory is None:
        raise ConfigError(
            f"ppo: the starting adapter was merged into {base}; the engine must serve that model. "
            "Pass engine_factory= (called with the merged path) instead of an engine on the old base."
        )
    if engine_factory is not None and (engine is None or merged):
        return engine_factory(base), True
    if engine is None:
        raise ConfigError("ppo: rollout='engine' needs an engine or engine_factory")
    return engine, False
