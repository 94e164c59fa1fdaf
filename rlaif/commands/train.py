"""``rlaif train dpo|sft|reward-model|ppo|grpo|rloo|options``: run one training stage from a YAML config.

Each stage reads one YAML mapping validated against its pydantic config (unknown keys are errors),
then ``--set key.sub=value`` overrides (parsed as YAML scalars). Relative paths are taken from the
current directory. Several processes or GPUs: ``accelerate launch -m rlaif.cli train dpo --config ...``
(DeepSpeed / FSDP through the config's ``deepspeed`` / ``fsdp`` fields or accelerate's own config).

Heavy imports (torch, trl, vllm) happen inside the command bodies so ``rlaif --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from rlaif.commands.output import emit
from rlaif.errors import ConfigError
from rlaif.files import load_yaml_mapping

STAGES = {
    "dpo": "DPOConfig",
    "sft": "SFTConfig",
    "reward-model": "RewardModelConfig",
    "ppo": "PPOConfig",
    "grpo": "GRPOConfig",
    "rloo": "RLOOConfig",
}

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML file with the stage's settings.")
SetOpt = typer.Option([], "--set", "-s", help="Override: key.sub=value (repeatable).")


def load_stage_config(stage: str, config: Path | None, overrides: list[str]):
    """YAML file + overrides -> the stage's validated config (errors name the file and key)."""

    from rlaif.config.base import validate_model
    from rlaif.config.loading import apply_overrides

    data: dict[str, Any] = {}
    source = "command line"
    if config is not None:
        data = load_yaml_mapping(config)
        source = str(config)
    data = apply_overrides(data, list(overrides), source)
    return validate_model(_config_model(stage), data, source)


def _config_model(stage: str):
    """The stage's pydantic config (SFT's lives beside its trainer, the others in rlaif.train.configs)."""
    if stage == "sft":
        from rlaif.train.sft import SFTConfig

        return SFTConfig
    from rlaif.train import configs

    return getattr(configs, STAGES[stage])


def _report(result) -> None:
    """Print the result once, from the main process (every rank of an accelerate launch returns it)."""
    if int(os.environ.get("RANK", "0")) == 0:
        emit(json.dumps(result.to_json(), indent=2))


def _interrupt_hint(stage: str, cfg, config: Path | None, overrides: list[str]) -> None:
    """Say on Ctrl-C what a stopped training run leaves behind: the steps logged so far, and (with
    save_steps) checkpoints, from which the same command resumes; without them it starts at step 0."""
    import shlex

    from rlaif.commands import interrupts

    out = Path(cfg.output_dir)
    command = ["rlaif", "train", stage]
    if config is not None:
        command += ["--config", str(config)]
    for item in overrides:
        command += ["--set", item]
    kept = f"the steps logged so far are kept in {out / 'metrics.jsonl'}"
    if getattr(cfg, "save_steps", None):
        folder = out / ("checkpoints" if stage == "ppo" else "trainer")
        kept += f" and checkpoints every {cfg.save_steps} steps in {folder}"
        interrupts.set_resume_hint(f"{kept}; resume from the newest with: {shlex.join(command)}")
        return
    interrupts.set_resume_hint(f"{kept}; no model was saved; train again with: {shlex.join(command)}")


def _progress_callbacks(stage: str) -> list:
    from rlaif.train.progress import TrainingProgress

    return [TrainingProgress(stage)]


def dpo(config: Path | None = ConfigOpt, set_: list[str] = SetOpt) -> None:
    """One DPO round (TRL DPOTrainer) on PreferencePair files; writes an adapter or model directory."""
    from rlaif.train.dpo import run_dpo

    cfg = load_stage_config("dpo", config, set_)
    _interrupt_hint("dpo", cfg, config, set_)
    _report(run_dpo(cfg, callbacks=_progress_callbacks("dpo")))


def sft(config: Path | None = ConfigOpt, set_: list[str] = SetOpt) -> None:
    """SFT (TRL SFTTrainer) on SFT record files (id, prompt, completion); writes the trained policy."""
    from rlaif.train.sft import run_sft

    cfg = load_stage_config("sft", config, set_)
    _interrupt_hint("sft", cfg, config, set_)
    _report(run_sft(cfg, callbacks=_progress_callbacks("sft")))


def reward_model(config: Path | None = ConfigOpt, set_: list[str] = SetOpt) -> None:
    """Train a Bradley-Terry reward model on pair files and report held-out accuracy."""
    from rlaif.train.reward_model import train_reward_model

    cfg = load_stage_config("reward-model", config, set_)
    _interrupt_hint("reward-model", cfg, config, set_)
    _report(train_reward_model(cfg, callbacks=_progress_callbacks("reward model")))


def ppo(
    config: Path | None = ConfigOpt,
    set_: list[str] = SetOpt,
    kv_cache_gb: float | None = typer.Option(None, help="vLLM KV cache in GiB for rollout=engine (CPU)."),
    max_model_len: int | None = typer.Option(None, help="vLLM context length for rollout=engine."),
) -> None:
    """PPO with a critic (our trainer); rewards from a reward model or a 'module:function' callable."""
    from rlaif.train.ppo import run_ppo

    cfg = load_stage_config("ppo", config, set_)
    _interrupt_hint("ppo", cfg, config, set_)
    factory = None
    if cfg.rollout == "engine":
        from rlaif.config import EngineConfig
        from rlaif.pipeline.engines import build_engine

        engine_cfg = EngineConfig(max_model_len=max_model_len, kv_cache_gb=kv_cache_gb)

        def factory(base: Path):
            return build_engine(engine_cfg, base, lora_rank=cfg.lora.r, seed=cfg.seed, key="--max-model-len")

    _report(run_ppo(cfg, engine_factory=factory))


def grpo(config: Path | None = ConfigOpt, set_: list[str] = SetOpt) -> None:
    """GRPO (TRL GRPOTrainer) with our reward functions."""
    from rlaif.train.grpo import run_grpo

    _report(run_grpo(load_stage_config("grpo", config, set_)))


def rloo(config: Path | None = ConfigOpt, set_: list[str] = SetOpt) -> None:
    """RLOO (TRL RLOOTrainer) with our reward functions."""
    from rlaif.train.grpo import run_rloo

    _report(run_rloo(load_stage_config("rloo", config, set_)))


def options(stage: str = typer.Argument(..., help="dpo, sft, reward-model, ppo, grpo or rloo.")) -> None:
    """List a stage's config keys with their defaults and help texts."""
    from pydantic import BaseModel

    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            nested = [
                a
                for a in getattr(ann, "__args__", (ann,))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ]
            default = (
                "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            )
            emit(f"{prefix}{name} [{default}]: {field.description}")
            if nested:
                walk(nested[0], f"{prefix}{name}.")

    walk(_config_model(stage), "")


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(
        help="Training stages: DPO, SFT, reward model, PPO, GRPO, RLOO.", no_args_is_help=True
    )
    train_app.command("dpo")(dpo)
    train_app.command("sft")(sft)
    train_app.command("reward-model")(reward_model)
    train_app.command("ppo")(ppo)
    train_app.command("grpo")(grpo)
    train_app.command("rloo")(rloo)
    train_app.command("options")(options)
    app.add_typer(train_app, name="train")
