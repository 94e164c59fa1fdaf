"""GRPO and RLOO final rounds through TRL's trainers, with our reward functions.

Rewards are TRL-style callables ``(prompts, completions, **columns) -> list[float | None]`` - the
sandbox rewards in :mod:`rlaif.code.rewards`, a reward-model scorer, a judge - given as Python
callables or as :class:`rlaif.train.configs.RewardSpec` entries in the config. A prompt record's
metadata reaches every reward function as keyword columns (a code problem's ``tests``, an instruction
prompt's ``instructions``), exactly as written in the prompt file: it is looked up by row, never stored
in the Arrow dataset, because Arrow needs one type per column and metadata often mixes them (an
instruction's ``value`` is a number for a word limit and a phrase for a closing line).

Like PPO, a starting adapter is merged into the base first (``<output_dir>/base``): TRL's reference
for LoRA is the base with the adapter disabled, which must be the starting policy. Generation uses
TRL's HF path by default; TRL's own vLLM modes can be switched on through ``trainer_args`` on GPUs.
``stop_strings`` end completions where our vLLM sampling ends them (:mod:`rlaif.train.stop_strings`:
the stop string is kept, nothing after it is trained on; HF path only).

Progress (steps, loss, tok/s, ETA) goes to stderr through :class:`rlaif.train.progress.TrainingProgress`.

Outputs: ``adapter/`` (LoRA) or ``model/``, ``metrics.jsonl`` (TRL's reward, reward_std,
per-function rewards, KL, clip ratios, completion lengths, ``completions/stopped_ratio`` with
stop strings), ``result.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.errors import ConfigError
from rlaif.records import PromptRecord
from rlaif.train.common import (
    ROW_COLUMN,
    StageResult,
    load_prompt_records,
    make_trl_config,
    prompt_rows,
    resume_key,
    run_logged_trainer,
    save_policy_stage,
    tensorboard_dir,
    trainer_kwargs,
)
from rlaif.train.configs import GRPOConfig, RLOOConfig
from rlaif.train.models import (
    check_model_dir,
    load_causal_lm,
    load_tokenizer,
    merged_starting_base,
    peft_lora_config,
)
from rlaif.train.precision import trainable_dtype
from rlaif.train.rewards import RewardFn, load_reward, reward_name
from rlaif.train.stop_strings import stopping_trainer


def _named(fn: RewardFn) -> RewardFn:
    """TRL names reward columns after ``__name__``; partials and scorer objects may lack one."""
    if not hasattr(fn, "__name__"):
        try:
            fn.__name__ = reward_name(fn)  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
    return fn


def _reward_functions(
    cfg: GRPOConfig | RLOOConfig, stage: str, extra: list[RewardFn] | None
) -> list[RewardFn]:
    """The config's reward sources, then the callables passed in; their count must match the weights."""
    funcs = [_named(load_reward(spec)) for spec in cfg.rewards] + [_named(f) for f in extra or []]
    if not funcs:
        raise ConfigError(f"{stage}: no reward functions (set `rewards` or pass reward_funcs=)")
    weights = cfg.reward_weights
    if weights is not None and len(weights) != len(funcs):
        raise ConfigError(
            f"{stage}: reward_weights has {len(weights)} entries for {len(funcs)} reward functions"
        )
    return funcs


def _with_metadata(fn: RewardFn, rows: list[dict[str, Any]]) -> RewardFn:
    """``fn`` called with each prompt's metadata as columns (``rows`` from ``prompt_rows``), looked up
    by the dataset's row index."""
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "prompt"))

    def reward_with_metadata(prompts, completions, **columns):
        indices = columns.pop(ROW_COLUMN)
        columns.update({k: [rows[i].get(k) for i in indices] for k in keys})
        return fn(prompts=prompts, completions=completions, **columns)

    reward_with_metadata.__name__ = reward_name(fn)
    return reward_with_metadata


def _trl_trainer_and_args(cfg: GRPOConfig | RLOOConfig, stage: str):
    """(TRL trainer class, TRL config) for ``stage``; ``cfg.trainer_args`` overrides last."""
    kw: dict[str, Any] = trainer_kwargs(cfg)
    kw.update(
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        reward_weights=cfg.reward_weights,
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
    return stopping_trainer(Trainer), make_trl_config(TRLConfig, kw, stage)


def _run_group_rl(
    cfg: GRPOConfig | RLOOConfig,
    stage: str,
    prompts: list[PromptRecord] | None,
    reward_funcs: list[RewardFn] | None,
    callbacks: list | None,
    label: str | None,
) -> StageResult:
    from datasets import Dataset

    from rlaif.train.progress import TrainingProgress

    check_model_dir(cfg.policy.path, "policy.path")
    records = prompts if prompts is not None else load_prompt_records(cfg.prompts)
    funcs = _reward_functions(cfg, stage, reward_funcs)
    rows = prompt_rows(records)  # checks metadata keys against TRL's own arguments
    dataset = Dataset.from_list([{"prompt": row["prompt"], ROW_COLUMN: i} for i, row in enumerate(rows)])

    out = Path(cfg.output_dir)
    base = merged_starting_base(cfg.policy, out)
    tokenizer = load_tokenizer(cfg.policy.path)
    model = load_causal_lm(base, trainable_dtype(cfg.precision))  # bf16 only via autocast
    peft_config = peft_lora_config(cfg.lora) if cfg.lora is not None else None
    trainer_cls, args = _trl_trainer_and_args(cfg, stage)

    def build(callbacks: list):
        return trainer_cls(
            model=model,
            reward_funcs=[_with_metadata(f, rows) for f in funcs],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
            stop_strings=cfg.stop_strings,
        )

    key = resume_key(cfg, [rows, [reward_name(f) for f in funcs]])
    progress = [TrainingProgress(label or stage)] if callbacks is None else callbacks
    trainer, _ = run_logged_trainer(
        build, args, stage, out, key=key, callbacks=progress, logging_dir=tensorboard_dir(cfg)
    )
    return save_policy_stage(
        trainer,
        cfg,
        tokenizer,
        stage=stage,
        base=base,
        counts={"prompts": len(records)},
        extra={"reward_functions": [reward_name(f) for f in funcs]},
    )


def run_grpo(
    cfg: GRPOConfig,
    *,
    prompts: list[PromptRecord] | None = None,
    reward_funcs: list[RewardFn] | None = None,
    callbacks: list | None = None,
    label: str | None = None,
) -> StageResult:
    """GRPO round; ``reward_funcs`` are added after the config's ``rewards``; ``callbacks`` replace
    the default progress display (steps, loss, tok/s, ETA on stderr), which ``label`` names (default
    ``grpo``; a run passes its stage's name, e.g. ``final/train``, as its other stages show)."""
    return _run_group_rl(cfg, "grpo", prompts, reward_funcs, callbacks, label)


def run_rloo(
    cfg: RLOOConfig,
    *,
    prompts: list[PromptRecord] | None = None,
    reward_funcs: list[RewardFn] | None = None,
    callbacks: list | None = None,
    label: str | None = None,
) -> StageResult:
    """RLOO round; as :func:`run_grpo`."""
    return _run_group_rl(cfg, "rloo", prompts, reward_funcs, callbacks, label)
