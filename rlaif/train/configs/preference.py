"""Configs of the preference-trained stages: a DPO round and the Bradley-Terry reward model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rlaif.train.configs.base import (
    LoraSettings,
    PolicySpec,
    TrainerSettings,
    refuse_full_finetuning_of_an_adapter,
)

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


class DPOOptions(TrainerSettings):
    """What a user sets for a DPO round (a run's ``dpo:`` block); :class:`DPOConfig` adds the inputs.

    LoRA modes (when `lora` is set):
    - ``adapter_mode: new`` - the starting policy's adapter (if any) is merged into its base and saved
      as ``<output_dir>/base``; a fresh adapter is trained on top. The reference is the starting policy
      (adapter disabled = the merged start). Serve the result with an engine on ``result.base_model``.
    - ``adapter_mode: continue`` - the starting policy's adapter keeps training; the adapter still applies
      to the original base, so the same engine serves every round. The reference is a frozen copy of
      the starting adapter (TRL's "ref" adapter).
    """

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
    def _consistent(self) -> DPOOptions:
        if self.reference == "sft" and self.sft_model is None:
            raise ValueError("reference='sft' needs sft_model")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(
                f"loss_weights has {len(self.loss_weights)} entries for {len(self.loss_type)} loss types"
            )
        return self

    def check_start(self, policy: PolicySpec) -> None:
        """Whether these options can train ``policy`` (a run checks its starting policy up front)."""
        refuse_full_finetuning_of_an_adapter(self.lora, policy)


class DPOConfig(DPOOptions):
    """One DPO round: policy + pair files -> a new adapter or model directory vLLM can serve. In a run,
    the run decides ``policy`` (the previous round's output) and ``pairs`` (the round's filtered pairs)."""

    policy: PolicySpec = Field(description="Starting policy of this round (the previous round's output).")
    pairs: list[Path] = Field(min_length=1, description="PreferencePair JSONL files to train on.")

    @model_validator(mode="after")
    def _starts_from_policy(self) -> DPOConfig:
        self.check_start(self.policy)
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
