"""Configs of the reinforcement-learning stages: our PPO with a critic, and TRL's GRPO / RLOO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from rlaif.train.configs.base import LoraSettings, PolicySpec, RewardSpec, TrainerBase, TrainerSettings

StopStrings = list[Annotated[str, Field(min_length=1)]] | None


def _stop_strings_field():
    return Field(
        None,
        description="End a completion at the first of these strings, kept in it (as the run's code "
        "sampling does); nothing after it is sampled, trained on or counted. null or []: only EOS and "
        "max_completion_length end a completion. In a run whose final reward runs code (sandbox, or "
        "verifier on code problems) the default is the end of the first code block.",
    )


class PPOOptions(TrainerBase):
    """What a user sets for our PPO (a run's ``final.options``); :class:`PPOConfig` adds the inputs.
    Defaults follow the InstructGPT/TRL-0.x recipe; the trainers' base and TRL's words (``max_steps``,
    ``num_generations``, ``max_completion_length``, ``logging_steps``)."""

    renamed_keys: ClassVar[dict[str, str]] = {
        "steps": "max_steps",
        "samples_per_prompt": "num_generations",
        "max_new_tokens": "max_completion_length",
        "log_every": "logging_steps",
    }

    output_dir: Path = Field(
        description="Directory for the actor adapter/model, critic, metrics.jsonl, result.json."
    )
    reward: RewardSpec | None = Field(
        None, description="Reward source; the Python API may pass a callable instead."
    )
    critic_model: Path | None = Field(
        None, description="Critic initialisation; default: reward.reward_model when given, else the policy."
    )
    lora: LoraSettings | None = Field(
        default_factory=LoraSettings,
        description="Actor LoRA settings; null means full fine-tuning of the actor.",
    )
    critic_lora: LoraSettings | None = Field(
        None, description="Critic LoRA (+ trainable value head); null: full."
    )
    rollout: Literal["hf", "engine"] = Field(
        "hf",
        description="Generate rollouts with HF generate, or with a vLLM engine serving the current adapter.",
    )
    max_steps: int = Field(20, ge=1, description="PPO iterations (rollout + update).")
    batch_size: int = Field(8, ge=1, description="Prompts per iteration (per process).")
    num_generations: int = Field(1, ge=1, description="Responses sampled per prompt per iteration.")
    ppo_epochs: int = Field(4, ge=1, description="Optimisation passes over each rollout batch.")
    minibatch_size: int = Field(4, ge=1, description="Responses per gradient step within a PPO epoch.")
    max_completion_length: int = Field(32, ge=1, description="Maximum response tokens per rollout.")
    stop_strings: StopStrings = _stop_strings_field()
    max_prompt_tokens: int = Field(
        256, ge=1, description="Prompts longer than this are cut from the left (counted)."
    )
    temperature: float = Field(
        1.0, gt=0, description="Sampling temperature; logits are divided by it when scoring."
    )
    learning_rate: float = Field(1e-5, gt=0, description="Actor learning rate.")
    critic_learning_rate: float | None = Field(
        None, gt=0, description="Critic learning rate (default: actor's)."
    )
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    cliprange: float = Field(0.2, gt=0, description="Policy ratio clip epsilon.")
    cliprange_value: float = Field(0.2, gt=0, description="Value prediction clip around the rollout values.")
    vf_coef: float = Field(
        0.1, ge=0, description="Weight of the value loss when actor and critic share a step."
    )
    kl_coef: float = Field(
        0.05, ge=0, description="Initial beta of the per-token KL penalty -beta(log pi - log ref)."
    )
    adaptive_kl: bool = Field(False, description="Adapt beta towards kl_target (Ziegler et al. 2019).")
    kl_target: float = Field(6.0, gt=0, description="Target sequence KL for the adaptive controller.")
    kl_horizon: int = Field(10000, ge=1, description="Horizon (in samples) of the adaptive controller.")
    whiten_advantages: bool = Field(
        True, description="Normalise advantages to mean 0 / std 1 over the batch."
    )
    missing_eos_penalty: float | None = Field(
        1.0,
        ge=0,
        description="Subtracted from the score of responses with no EOS and no stop string (cut at "
        "max_completion_length).",
    )
    normalize_rewards: bool = Field(
        False, description="Normalise scores by running mean/std before the KL term."
    )
    reward_clip: float | None = Field(
        None, gt=0, description="Clip (normalised) scores to [-c, c]; null: no clip."
    )
    ptx_coef: float = Field(0.0, ge=0, description="Weight of the pretraining-mix LM loss; 0 disables it.")
    ptx_data: Path | None = Field(
        None, description="Text for the ptx loss: .txt (one document per line) or .jsonl."
    )
    ptx_batch_size: int = Field(4, ge=1, description="Documents per ptx loss batch.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient-norm clipping for actor and critic.")
    seed: int = Field(0, description="Seed for prompt order, sampling and adapter initialisation.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on a capable GPU, else fp32."
    )
    save: Literal["adapter", "merged"] = Field(
        "adapter", description="With LoRA: save the adapter, or also merged."
    )
    save_critic: bool = Field(
        True, description="Save the trained critic (value head model) next to the actor."
    )
    logging_steps: int = Field(1, ge=1, description="Write a metrics.jsonl line every N iterations.")
    save_steps: int | None = Field(
        None,
        ge=1,
        description="Checkpoint actor, critic, optimisers, KL controller and RNG every N iterations "
        "in output_dir/checkpoints; a re-run with the same settings resumes from the newest one.",
    )
    save_total_limit: int = Field(2, ge=1, description="With save_steps: keep only the newest K checkpoints.")

    @model_validator(mode="after")
    def _consistent(self) -> PPOOptions:
        if self.ptx_coef > 0 and self.ptx_data is None:
            raise ValueError("ptx_coef > 0 needs ptx_data")
        if self.rollout == "engine" and self.lora is None:
            raise ValueError(
                "rollout='engine' serves the actor as a LoRA adapter: set lora (full FT needs 'hf')"
            )
        return self


class PPOConfig(PPOOptions):
    """Our PPO with a critic. In a run, the run decides ``policy`` (the last round's output) and
    ``prompts`` (the run's prompts, written beside the stage)."""

    policy: PolicySpec = Field(
        description="Starting policy; an adapter is merged in (that is the reference)."
    )
    prompts: list[Path] = Field(default_factory=list, description="PromptRecord JSONL files to roll out on.")


STOP_STRINGS_REFUSE = ("use_vllm", "use_transformers_continuous_batching", "mask_truncated_completions")
"""TRL settings stop strings do not cover: other generation paths, and masking completions without an
EOS (which would mask every completion that ended at a stop string)."""


class _GroupRLOptions(TrainerSettings):
    """Shared by GRPO and RLOO: group sampling with rewards from our reward functions."""

    rewards: list[RewardSpec] = Field(
        default_factory=list, description="Reward sources; the Python API may add more."
    )
    reward_weights: list[float] | None = Field(
        None, description="Weights of the reward sources (default all 1)."
    )
    num_generations: int = Field(4, ge=2, description="Completions per prompt (the group).")
    max_completion_length: int = Field(64, ge=1, description="Maximum completion tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    stop_strings: StopStrings = _stop_strings_field()
    beta: float = Field(
        0.0, ge=0, description="KL coefficient to the reference; 0 skips the reference model."
    )
    lora: LoraSettings | None = Field(
        default_factory=LoraSettings, description="LoRA settings; null: full FT."
    )
    save: Literal["adapter", "merged"] = Field(
        "adapter", description="With LoRA: save the adapter, or also merged."
    )
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate of AdamW.")
    per_device_train_batch_size: int = Field(
        4, ge=1, description="Completions per device per step; the global batch must hold whole groups."
    )

    @model_validator(mode="after")
    def _consistent(self) -> _GroupRLOptions:
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} entries for {len(self.rewards)} rewards"
            )
        refused = [k for k in STOP_STRINGS_REFUSE if self.stop_strings and self.trainer_args.get(k)]
        if refused:
            raise ValueError(
                f"stop_strings works with TRL's transformers generation only, not with trainer_args."
                f"{refused[0]}: set stop_strings: [] to use it"
            )
        return self


class GRPOOptions(_GroupRLOptions):
    """What a user sets for GRPO (TRL GRPOTrainer): group-normalised advantages, no critic."""

    loss_type: str = Field("dapo", description="TRL GRPO loss: grpo, dapo, dr_grpo, bnpo, ...")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Divide advantages by the group (or batch) reward std, or not at all."
    )


class RLOOOptions(_GroupRLOptions):
    """What a user sets for RLOO (TRL RLOOTrainer): leave-one-out baseline over the group."""

    normalize_advantages: bool = Field(False, description="Normalise advantages over the generation batch.")


_POLICY = "Starting policy; an adapter is merged in before training."
_PROMPTS = "PromptRecord JSONL files (metadata -> reward kwargs)."


class GRPOConfig(GRPOOptions):
    """GRPO (TRL GRPOTrainer): group-normalised advantages, no critic. In a run, the run decides
    ``policy`` and ``prompts``."""

    policy: PolicySpec = Field(description=_POLICY)
    prompts: list[Path] = Field(min_length=1, description=_PROMPTS)


class RLOOConfig(RLOOOptions):
    """RLOO (TRL RLOOTrainer): leave-one-out baseline over the group. In a run, the run decides
    ``policy`` and ``prompts``."""

    policy: PolicySpec = Field(description=_POLICY)
    prompts: list[Path] = Field(min_length=1, description=_PROMPTS)
