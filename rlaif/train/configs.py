"""Validated settings for every training stage (DPO, reward model, PPO, GRPO, RLOO).

Why pydantic and not TRL's dataclasses directly: a run config is checked in full before any model is
loaded (a typo in a YAML key is an error, not a silently ignored option), every field carries a help
text for ``rlaif train ... --help`` and the docs, and the stage modules translate these into TRL
arguments in one place. TRL options we do not model are still reachable through ``trainer_args``,
which is handed to TRL verbatim (TRL validates it; its errors become :class:`ConfigError`).

Guarantees: ``extra="forbid"`` everywhere; paths are not checked for existence here (a config may be
written before its inputs exist) but each stage checks them before loading anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rlaif.errors import ConfigError, describe_validation_error

# TRL 1.16 DPOTrainer loss names (trl/trainer/dpo_trainer.py); checked here so a typo fails before loading.
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)

# Projections vLLM can serve LoRA on for Llama-style models (packed into qkv_proj / gate_up_proj there).
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LoraSettings(_Strict):
    """LoRA adapter shape. Defaults are servable by vLLM (rank <= its ``max_lora_rank``, no bias/DoRA)."""

    r: int = Field(
        8, ge=1, le=256, description="LoRA rank; keep <= the vLLM engine's max_lora_rank (16 by default)."
    )
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (effective scale alpha / r).")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input; PPO forces 0 (dropout off for RL)."
    )
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        min_length=1,
        description="Module names to adapt. Attention and MLP projections are served by vLLM; lm_head is not.",
    )

    @field_validator("target_modules")
    @classmethod
    def _no_lm_head(cls, v: list[str]) -> list[str]:
        if any(m in ("lm_head", "embed_tokens") for m in v):
            raise ValueError(
                "lm_head/embed_tokens cannot be LoRA targets (TRL ignores them, vLLM cannot serve them)"
            )
        return v


class PolicySpec(_Strict):
    """A policy: a model directory, optionally with a LoRA adapter trained on top of it."""

    path: Path = Field(description="Model directory (HF format, with tokenizer files).")
    adapter: Path | None = Field(None, description="LoRA adapter directory applied on top of `path`, if any.")


class TrainerSettings(_Strict):
    """Optimisation settings shared by the TRL-backed stages (mapped onto transformers' TrainingArguments)."""

    output_dir: Path = Field(
        description="Directory for the stage's outputs (model/adapter, metrics.jsonl, result.json)."
    )
    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate of AdamW.")
    epochs: float = Field(
        1.0, gt=0, description="Passes over the training data (ignored when max_steps > 0)."
    )
    max_steps: int = Field(-1, description="Stop after this many optimiser steps; -1 means use `epochs`.")
    per_device_batch_size: int = Field(4, ge=1, description="Examples (pairs/prompts) per device per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches accumulated per optimiser step."
    )
    lr_scheduler: str = Field(
        "linear", description="transformers scheduler name: linear, cosine, constant, ..."
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient-norm clipping threshold.")
    max_length: int | None = Field(1024, ge=8, description="Maximum tokens per prompt+response sequence.")
    seed: int = Field(0, description="Seed for data order, adapter initialisation and sampling.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that supports it, fp32 otherwise (CPU)."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory (slower).")
    logging_steps: int = Field(1, ge=1, description="Log training metrics every N optimiser steps.")
    save_steps: int | None = Field(
        None,
        ge=1,
        description="Write a resumable trainer checkpoint every N steps (None: only the final model).",
    )
    deepspeed: Path | None = Field(
        None, description="DeepSpeed JSON config, passed to TRL/transformers unchanged."
    )
    fsdp: str | None = Field(
        None, description="FSDP options string (e.g. 'full_shard auto_wrap'), passed through."
    )
    fsdp_config: dict[str, Any] | Path | None = Field(
        None, description="FSDP config dict or JSON file, passed through."
    )
    trainer_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra TRL/transformers config fields set verbatim (e.g. {'optim': 'adamw_torch_fused'}).",
    )


class DPOConfig(TrainerSettings):
    """One DPO round: policy + pair files -> a new adapter or model directory vLLM can serve.

    LoRA modes (when `lora` is set):
    - ``adapter_mode: new`` - the starting policy's adapter (if any) is merged into its base and saved
      as ``<output_dir>/base``; a fresh adapter is trained on top. The reference is the starting policy
      (adapter disabled = the merged start). Serve the result with an engine on ``result.base_model``.
    - ``adapter_mode: continue`` - the starting policy's adapter keeps training; the adapter still applies
      to the original base, so the same engine serves every round. The reference is a frozen copy of
      the starting adapter (TRL's "ref" adapter).
    """

    policy: PolicySpec = Field(description="Starting policy of this round (the previous round's output).")
    pairs: list[Path] = Field(min_length=1, description="PreferencePair JSONL files to train on.")
    eval_pairs: list[Path] = Field(
        default_factory=list, description="Optional held-out pair files for evaluation."
    )
    reference: Literal["policy", "sft"] = Field(
        "policy", description="Reference model: the round's starting policy, or the fixed model `sft_model`."
    )
    sft_model: Path | None = Field(None, description="Fixed reference model directory when reference='sft'.")
    loss_type: list[str] = Field(
        default_factory=lambda: ["sigmoid"],
        min_length=1,
        description="TRL DPO loss type(s): sigmoid, ipo, robust, hinge, ... (several are combined with loss_weights).",
    )
    loss_weights: list[float] | None = Field(
        None, description="Weights for several loss types (default all 1)."
    )
    beta: float = Field(
        0.1, gt=0, description="DPO beta (IPO tau): strength of the pull towards the reference."
    )
    nll_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of an NLL term on the chosen response (Llama 3 used 0.2); 0 disables it.",
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Label-flip probability for robust DPO / EXO eps."
    )
    lora: LoraSettings | None = Field(
        default_factory=LoraSettings, description="LoRA adapter settings; null means full fine-tuning."
    )
    adapter_mode: Literal["new", "continue"] = Field(
        "new", description="With LoRA: new adapter on the merged start, or continue the start's adapter."
    )
    save: Literal["adapter", "merged"] = Field(
        "adapter", description="With LoRA: save the adapter only, or also a merged model directory."
    )
    precompute_ref_log_probs: bool = Field(
        False,
        description="Compute reference log-probs once before training (saves memory, frees the reference).",
    )

    @field_validator("loss_type", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("loss_type")
    @classmethod
    def _known_losses(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in DPO_LOSS_TYPES]
        if bad:
            raise ValueError(f"unknown DPO loss type(s) {bad}; known: {', '.join(DPO_LOSS_TYPES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DPOConfig:
        if self.reference == "sft" and self.sft_model is None:
            raise ValueError("reference='sft' needs sft_model")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(
                f"loss_weights has {len(self.loss_weights)} entries for {len(self.loss_type)} loss types"
            )
        if self.lora is None and self.policy.adapter is not None:
            raise ValueError("full fine-tuning (lora: null) of a policy with an adapter: merge it first")
        return self


class RewardModelConfig(TrainerSettings):
    """Bradley-Terry reward model on pair files (TRL RewardTrainer), with held-out accuracy.

    Soft labels: where a pair carries ``soft_label`` p = P(chosen is better) and ``soft_labels`` is on,
    the loss is the soft Bradley-Terry cross-entropy -[p log s(d) + (1-p) log s(-d)]; pairs without a
    soft label count as p = 1 (a hard preference). TRL itself only supports hard labels (with an
    optional margin), so this is our small extension of its loss.
    """

    model: Path = Field(
        description="Model directory to initialise the reward model from (usually the policy)."
    )
    pairs: list[Path] = Field(min_length=1, description="PreferencePair JSONL files to train on.")
    eval_pairs: list[Path] = Field(
        default_factory=list,
        description="Held-out pair files; when empty, `eval_fraction` of `pairs` is held out.",
    )
    eval_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of pairs held out (by a stable hash of the pair id) for accuracy.",
    )
    freeze_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Freeze the embeddings and the first x% of transformer layers (0.7 = 70%).",
    )
    lora: LoraSettings | None = Field(
        None, description="Train LoRA + score head instead of all weights; merged on save."
    )
    soft_labels: bool = Field(True, description="Use pairs' soft_label in a soft Bradley-Terry loss.")
    use_margin: bool = Field(False, description="Use pairs' margin in TRL's margin loss (hard labels only).")
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="Penalty pushing rewards towards mean zero (0.01 recommended); null disables."
    )
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate of AdamW.")

    @model_validator(mode="after")
    def _consistent(self) -> RewardModelConfig:
        if self.use_margin and self.soft_labels:
            raise ValueError(
                "use_margin and soft_labels cannot both be on (TRL's margin loss is hard-label only)"
            )
        return self


class RewardSpec(_Strict):
    """Where a stage's scalar reward comes from (exactly one source)."""

    reward_model: Path | None = Field(
        None, description="Reward model directory (from `rlaif train reward-model`)."
    )
    function: str | None = Field(
        None,
        description="Reward callable as 'package.module:function', called (prompts, completions, **columns).",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments bound to `function`.")

    @model_validator(mode="after")
    def _one(self) -> RewardSpec:
        if (self.reward_model is None) == (self.function is None):
            raise ValueError("give exactly one of reward_model or function")
        if self.function is not None and ":" not in self.function:
            raise ValueError(f"function must look like 'package.module:function', got {self.function!r}")
        return self


class PPOConfig(_Strict):
    """Our PPO with a critic (DESIGN.md section 7); defaults follow the InstructGPT/TRL-0.x recipe."""

    output_dir: Path = Field(
        description="Directory for the actor adapter/model, critic, metrics.jsonl, result.json."
    )
    policy: PolicySpec = Field(
        description="Starting policy; an adapter is merged in (that is the reference)."
    )
    prompts: list[Path] = Field(default_factory=list, description="PromptRecord JSONL files to roll out on.")
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
    steps: int = Field(20, ge=1, description="PPO iterations (rollout + update).")
    batch_size: int = Field(8, ge=1, description="Prompts per iteration (per process).")
    samples_per_prompt: int = Field(1, ge=1, description="Responses sampled per prompt per iteration.")
    ppo_epochs: int = Field(4, ge=1, description="Optimisation passes over each rollout batch.")
    minibatch_size: int = Field(4, ge=1, description="Responses per gradient step within a PPO epoch.")
    max_new_tokens: int = Field(32, ge=1, description="Maximum response tokens per rollout.")
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
        1.0, ge=0, description="Subtracted from the score of responses with no EOS (cut at max_new_tokens)."
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
    log_every: int = Field(1, ge=1, description="Write a metrics.jsonl line every N iterations.")

    @model_validator(mode="after")
    def _consistent(self) -> PPOConfig:
        if self.ptx_coef > 0 and self.ptx_data is None:
            raise ValueError("ptx_coef > 0 needs ptx_data")
        if self.rollout == "engine" and self.lora is None:
            raise ValueError(
                "rollout='engine' serves the actor as a LoRA adapter: set lora (full FT needs 'hf')"
            )
        return self


class _GroupRLConfig(TrainerSettings):
    """Shared by GRPO and RLOO: group sampling with rewards from our reward functions."""

    policy: PolicySpec = Field(description="Starting policy; an adapter is merged in before training.")
    prompts: list[Path] = Field(
        min_length=1, description="PromptRecord JSONL files (metadata -> reward kwargs)."
    )
    rewards: list[RewardSpec] = Field(
        default_factory=list, description="Reward sources; the Python API may add more."
    )
    reward_weights: list[float] | None = Field(
        None, description="Weights of the reward sources (default all 1)."
    )
    num_generations: int = Field(4, ge=2, description="Completions per prompt (the group).")
    max_completion_length: int = Field(64, ge=1, description="Maximum completion tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
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
    per_device_batch_size: int = Field(
        4, ge=1, description="Completions per device per step; the global batch must hold whole groups."
    )

    @model_validator(mode="after")
    def _consistent(self) -> _GroupRLConfig:
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} entries for {len(self.rewards)} rewards"
            )
        return self


class GRPOConfig(_GroupRLConfig):
    """GRPO (TRL GRPOTrainer): group-normalised advantages, no critic."""

    loss_type: str = Field("dapo", description="TRL GRPO loss: grpo, dapo, dr_grpo, bnpo, ...")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Divide advantages by the group (or batch) reward std, or not at all."
    )


class RLOOConfig(_GroupRLConfig):
    """RLOO (TRL RLOOTrainer): leave-one-out baseline over the group."""

    normalize_advantages: bool = Field(False, description="Normalise advantages over the generation batch.")


def validate_config(model: type[BaseModel], data: dict[str, Any], source: str = "config") -> Any:
    """Validate ``data`` into ``model``; errors name the source and the dotted field path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = describe_validation_error(exc, limit=5, root="(config)")
        raise ConfigError(f"{source}: invalid {model.__name__}: {problem}") from None
