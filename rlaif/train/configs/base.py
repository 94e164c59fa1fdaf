"""Shared building blocks of the stage configs: strict models, LoRA shape, policy, trainer settings,
and reward sources.
Validation goes through :func:`rlaif.config.base.validate_model`, like the run config's.

Guarantees: ``extra="forbid"`` on every model (the one strict base, :class:`rlaif.config.base.Strict`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from rlaif.config.base import Strict, check_report_to

# Projections vLLM can serve LoRA on for Llama-style models (packed into qkv_proj / gate_up_proj there).
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(Strict):
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


class PolicySpec(Strict):
    """A policy: a model directory, optionally with a LoRA adapter trained on top of it."""

    path: Path = Field(description="Model directory (HF format, with tokenizer files).")
    adapter: Path | None = Field(None, description="LoRA adapter directory applied on top of `path`, if any.")


def refuse_full_finetuning_of_an_adapter(lora: LoraSettings | None, policy: PolicySpec) -> None:
    """DPO and SFT train the starting policy as it is: full fine-tuning cannot train an adapter."""
    if lora is None and policy.adapter is not None:
        raise ValueError("full fine-tuning (lora: null) of a policy with an adapter: merge it first")


class TrainerBase(Strict):
    """What every trainer (TRL's and our PPO) is set with, in TRL's words (``max_steps``,
    ``logging_steps``, ...). ``renamed_keys``: keys of earlier versions, named by the "did you mean"
    hint of a config error."""

    renamed_keys: ClassVar[dict[str, str]] = {}

    output_dir: Path = Field(
        description="Directory for the stage's outputs (model/adapter, metrics.jsonl, result.json)."
    )
    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate of AdamW.")
    max_steps: int = Field(
        -1, description="Stop after this many optimiser steps; -1 means use `num_train_epochs`."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient-norm clipping threshold.")
    seed: int = Field(0, description="Seed for data order, adapter initialisation and sampling.")
    logging_steps: int = Field(1, ge=1, description="Log training metrics every N optimiser steps.")
    report_to: list[str] = Field(
        default_factory=list,
        description="Trackers the training metrics also go to (tensorboard; wandb, trackio when installed); "
        "a run sets its own report_to here.",
    )
    logging_dir: Path | None = Field(
        None,
        description="With report_to: [tensorboard]: the event files' folder (default <output_dir>/tensorboard).",
    )

    _report_to = field_validator("report_to")(check_report_to)


class TrainerSettings(TrainerBase):
    """Optimisation settings shared by the TRL-backed stages (mapped onto transformers' TrainingArguments),
    named as TrainingArguments names them."""

    renamed_keys: ClassVar[dict[str, str]] = {
        "epochs": "num_train_epochs",
        "per_device_batch_size": "per_device_train_batch_size",
        "lr_scheduler": "lr_scheduler_type",
    }

    num_train_epochs: float = Field(
        1.0, gt=0, description="Passes over the training data (ignored when max_steps > 0)."
    )
    per_device_train_batch_size: int = Field(
        4, ge=1, description="Examples (pairs/prompts) per device per step."
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches accumulated per optimiser step."
    )
    lr_scheduler_type: str = Field(
        "linear", description="transformers scheduler name: linear, cosine, constant, ..."
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_length: int | None = Field(1024, ge=8, description="Maximum tokens per prompt+response sequence.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that supports it, fp32 otherwise (CPU)."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory (slower).")
    save_steps: int | None = Field(
        None,
        ge=1,
        description="Write a resumable trainer checkpoint every N steps (None: only the final model); "
        "a stage re-run with the same settings and data resumes from the newest one.",
    )
    save_total_limit: int = Field(
        2, ge=1, description="With save_steps: keep only the newest K checkpoints (older ones are deleted)."
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


class RewardSpec(Strict):
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
