"""Supervised fine-tuning with TRL's SFTTrainer: SFT records + starting policy -> a policy vLLM serves.

Why a stage of its own: SL-CAI's critique -> revision chains end in SFT records (prompt -> final
revision), and in Constitutional AI those revisions train the policy before RL-CAI; without this stage
they were written and never used. The records are TRL's conversational prompt-completion rows, so the
loss covers the completion only (TRL's ``completion_only_loss``), the chat template is the
tokenizer's, and LoRA comes from PEFT exactly as in a DPO round.

Outputs under ``output_dir``: ``adapter/`` (LoRA, on the starting base: a starting adapter is merged
first into ``base/``) or ``model/`` (full fine-tuning or ``save: merged``), ``metrics.jsonl``,
``result.json``. Non-guarantee: records longer than ``max_length`` tokens are truncated by TRL, not
dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from rlaif.errors import ConfigError
from rlaif.records import read_jsonl
from rlaif.train.common import (
    StageResult,
    make_trl_config,
    run_logged_trainer,
    save_policy_stage,
    tensorboard_dir,
    trainer_kwargs,
)
from rlaif.train.configs import LoraSettings, PolicySpec, TrainerSettings
from rlaif.train.configs.base import refuse_full_finetuning_of_an_adapter
from rlaif.train.models import (
    check_policy,
    load_causal_lm,
    load_tokenizer,
    merged_starting_base,
    peft_lora_config,
)
from rlaif.train.precision import trainable_dtype


class SFTOptions(TrainerSettings):
    """What a user sets for an SFT stage (a run's ``sft.options``); :class:`SFTConfig` adds the inputs."""

    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate of AdamW.")
    lora: LoraSettings | None = Field(
        default_factory=LoraSettings, description="LoRA adapter settings; null means full fine-tuning."
    )
    save: Literal["adapter", "merged"] = Field(
        "adapter", description="With LoRA: save the adapter only, or also a merged model directory."
    )

    def check_start(self, policy: PolicySpec) -> None:
        """Whether these options can train ``policy`` (a run checks its starting policy up front)."""
        refuse_full_finetuning_of_an_adapter(self.lora, policy)


class SFTConfig(SFTOptions):
    """One SFT stage: the policy trained on prompt -> completion records (e.g. SL-CAI revisions). In a
    run, the run decides ``policy`` and ``records`` (the records its SFT source wrote)."""

    policy: PolicySpec = Field(description="Starting policy.")
    records: list[Path] = Field(min_length=1, description="SFT record JSONL files (id, prompt, completion).")

    @model_validator(mode="after")
    def _starts_from_policy(self) -> SFTConfig:
        self.check_start(self.policy)
        return self


def sft_rows(records: list) -> list[dict]:
    """SFT records as TRL's conversational prompt-completion rows."""
    return [
        {
            "prompt": [m.model_dump() for m in r.prompt],
            "completion": [{"role": "assistant", "content": r.completion}],
        }
        for r in records
    ]


def trl_sft_args(cfg: SFTConfig):
    from trl import SFTConfig as TRLSFTConfig

    kw = trainer_kwargs(cfg)
    kw.update(max_length=cfg.max_length, completion_only_loss=True, packing=False)
    kw.update(cfg.trainer_args)
    return make_trl_config(TRLSFTConfig, kw, "sft")


def run_sft(cfg: SFTConfig, *, records: list | None = None, callbacks: list | None = None) -> StageResult:
    """Train on the records (``records``, already loaded, replaces ``cfg.records``) and save the policy."""
    from datasets import Dataset
    from trl import SFTTrainer

    from rlaif.feedback.result import SFTRecord

    check_policy(cfg.policy)
    rows = records if records is not None else [r for p in cfg.records for r in read_jsonl(p, SFTRecord)]
    if not rows:
        raise ConfigError(f"sft: no records in {[str(p) for p in cfg.records]}")
    args = trl_sft_args(cfg)
    tokenizer = load_tokenizer(cfg.policy.path)
    base = merged_starting_base(cfg.policy, cfg.output_dir)
    model = load_causal_lm(base, trainable_dtype(cfg.precision))
    peft_config = peft_lora_config(cfg.lora) if cfg.lora is not None else None
    dataset = Dataset.from_list(sft_rows(rows))

    def build(all_callbacks: list) -> SFTTrainer:
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=all_callbacks,
        )

    trainer, _ = run_logged_trainer(
        build, args, "sft", Path(cfg.output_dir), callbacks=callbacks, logging_dir=tensorboard_dir(cfg)
    )
    return save_policy_stage(
        trainer, cfg, tokenizer, stage="sft", base=base, counts={"records": len(rows)}, extra={}
    )
