"""GRPO and RLOO final rounds through TRL's trainers, with our reward functions.

Rewards are TRL-style callables ``(prompts, completions, **columns) -> list[float | None]`` - the
sandbox rewards in :mod:`rlaif.code.rewards`, a reward-model scorer, a judge - given as Python
callables or as :class:`rlaif.train.configs.RewardSpec` entries in the config. A prompt record's
metadata becomes dataset columns, so a code problem's tests reach the sandbox reward as a keyword.

Like PPO, a starting adapter is merged into the base first (``<output_dir>/base``): TRL's reference
for LoRA is the base with the adapter disabled, which must be the starting policy. Generation uses
TRL's HF path by default; TRL's own vLLM modes can be switched on through ``trainer_args`` on GPUs.

Outputs: ``adapter/`` (LoRA) or ``model/``, ``metrics.jsonl`` (TRL's reward, reward_std,
per-function rewards, KL, clip ratios, completion lengths), ``result.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError
from rlaif.records import PromptRecord
from rlaif.train.common import (
    MetricsWriter,
    StageResult,
    last_values,
    load_prompt_records,
    make_trl_config,
    metrics_callback,
    prompt_rows,
    trainer_kwargs,
)
from rlaif.train.configs import GRPOConfig, PolicySpec, RLOOConfig
from rlaif.train.models import (
    check_model_dir,
    load_causal_lm,
    load_tokenizer,
    merge_policy,
    peft_lora_config,
)
from rlaif.train.precision import trainable_dtype
from rlaif.train.rewards import RewardFn, load_reward, reward_name


def _named(fn: RewardFn) -> RewardFn:
    """TRL names reward columns after ``__name__``; partials and scorer objects may lack one."""
    if not hasattr(fn, "__name__"):
        try:
            fn.__name__ = reward_name(fn)  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
    return fn


def _starting_base(cfg, out: Path) -> Path:
    if cfg.policy.adapter is None:
        return Path(cfg.policy.path)
    from accelerate import PartialState

    state = PartialState()
    base = out / "base"
    with state.local_main_process_first():
        if state.is_local_main_process:
            merge_policy(cfg.policy, base)  # fp32: the trainable starting point
    return base


def _run_group_rl(
    cfg: GRPOConfig | RLOOConfig,
    stage: str,
    prompts: list[PromptRecord] | None,
    reward_funcs: list[RewardFn] | None,
) -> StageResult:
    from datasets import Dataset

    check_model_dir(cfg.policy.path, "policy.path")
    records = prompts if prompts is not None else load_prompt_records(cfg.prompts)
    funcs = [_named(load_reward(spec)) for spec in cfg.rewards] + [_named(f) for f in reward_funcs or []]
    if not funcs:
        raise ConfigError(f"{stage}: no reward functions (set `rewards` or pass reward_funcs=)")
    weights = cfg.reward_weights
    if weights is not None and len(weights) != len(funcs):
        raise ConfigError(
            f"{stage}: reward_weights has {len(weights)} entries for {len(funcs)} reward functions"
        )
    dataset = Dataset.from_list(prompt_rows(records))

    out = Path(cfg.output_dir)
    base = _starting_base(cfg, out)
    tokenizer = load_tokenizer(cfg.policy.path)
    model = load_causal_lm(base, trainable_dtype(cfg.precision))  # bf16 only via autocast
    peft_config = peft_lora_config(cfg.lora) if cfg.lora is not None else None

    kw: dict[str, Any] = trainer_kwargs(cfg)
    kw.update(
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        reward_weights=weights,
        disable_dropout=True,
    )
    if stage == "grpo":
        from trl import GRPOConfig as TRLConfig
        from trl import GRPOTrainer as Trainer

        kw.update(loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards)
    else:
        from trl import RLOOConfig as TRLConfig
        from trl import RLOOTrainer as Trainer

        kw.update(normalize_advantages=cfg.normalize_advantages)
    kw.update(cfg.trainer_args)
    args = make_trl_config(TRLConfig, kw, stage)

    writer = MetricsWriter(out / "metrics.jsonl", enabled=args.process_index == 0)
    trainer = Trainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[metrics_callback(writer, stage)],
    )
    trainer.train()
    writer.close()

    lora = cfg.lora is not None
    target = out / ("adapter" if lora else "model")
    trainer.save_model(str(target))
    trainer.accelerator.wait_for_everyone()
    result = StageResult(
        stage=stage,
        output_dir=out,
        base_model=base if lora else target,
        adapter=target if lora else None,
        metrics_path=out / "metrics.jsonl",
        metrics=last_values(trainer.state.log_history),
        counts={"prompts": len(records), "steps": trainer.state.global_step, "world_size": args.world_size},
        extra={"reward_functions": [reward_name(f) for f in funcs]},
    )
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(target))
        (target / "training_args.bin").unlink(missing_ok=True)
        if lora and cfg.save == "merged":
            result.merged_model = merge_policy(PolicySpec(path=base, adapter=target), out / "model")
        if not cfg.save_steps:
            shutil.rmtree(out / "trainer", ignore_errors=True)
        result.write()
    trainer.accelerator.wait_for_everyone()
    return result


def run_grpo(
    cfg: GRPOConfig, *, prompts: list[PromptRecord] | None = None, reward_funcs: list[RewardFn] | None = None
) -> StageResult:
    """GRPO round; ``reward_funcs`` are added after the config's ``rewards``."""
    return _run_group_rl(cfg, "grpo", prompts, reward_funcs)


def run_rloo(
    cfg: RLOOConfig, *, prompts: list[PromptRecord] | None = None, reward_funcs: list[RewardFn] | None = None
) -> StageResult:
    """RLOO round; ``reward_funcs`` are added after the config's ``rewards``."""
    return _run_group_rl(cfg, "rloo", prompts, reward_funcs)
