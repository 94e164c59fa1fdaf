"""Resolve a run once: which model validates each option block, and what the run sets in it.

The config layer (:func:`rlaif.config.resolve_run`) validates; this module, which may know the
components, names each block's model (the feedback registry, :class:`rlaif.pairs.PairFilterConfig`, the
trainers' configs) and the values a stage sets itself: the output directory and seed a user may
override, the policy, pair and prompt files a user may not. ``rlaif validate``, ``rlaif run`` and the
runner all call :func:`resolve`, so a block is validated once, with the values the stage will really
use, and the stages only fill in per-round values.

Guarantees: an unknown or broken ``feedback.source`` is an error naming that key; values the run
decides (``seed``, ``round``, ``adapter``: see :class:`rlaif.feedback.context.SourceContext`) and the
per-source pair filter (``filter``: pairs are filtered in one place, ``pairs.options``) are refused in
a built-in source's ``feedback.options`` with a message saying where they belong.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.config import Block, ResolvedRun, RunConfig, resolve_run
from rlaif.errors import ConfigError, RlaifError
from rlaif.feedback import FEEDBACK_SOURCES, resolve_source, source_config_model
from rlaif.pairs import PairFilterConfig
from rlaif.pipeline.judging import feedback_options
from rlaif.train.configs import DPOConfig, GRPOConfig, PolicySpec, PPOConfig, RLOOConfig

RUN_DECIDES = ("seed", "round", "adapter")


def resolve(cfg: RunConfig) -> ResolvedRun:
    """Every option block of ``cfg`` validated against its stage's model, once."""

    blocks = {
        "feedback.options": _feedback_block(cfg),
        "pairs.options": Block(PairFilterConfig, cfg.pairs.options),
        "dpo": _dpo_block(cfg),
    }
    if cfg.final.kind != "none":
        blocks["final.options"] = _final_block(cfg)
    run = resolve_run(cfg, blocks)
    _check_text_scoring(run)
    return run


def serves_adapters(run: ResolvedRun) -> bool:
    """Whether the run's policy engine may ever serve a LoRA adapter (a starting adapter, LoRA DPO
    rounds, or a final RL round). If not, its engine starts without LoRA and can score text."""
    cfg, dpo = run.config, run.blocks.get("dpo")
    trains_adapters = cfg.rounds > 0 and (dpo is None or getattr(dpo, "lora", True) is not None)
    return cfg.policy.adapter is not None or trains_adapters or cfg.final.kind != "none"


def lora_rank(run: ResolvedRun) -> int | None:
    """The largest LoRA rank the policy engine will serve: every resolved block's ``lora.r`` and the
    starting adapter's ``adapter_config.json``; None when the engine serves no adapter."""
    if not serves_adapters(run):
        return None
    ranks = [getattr(getattr(b, "lora", None), "r", None) for b in run.blocks.values()]
    start = run.config.policy.adapter
    if start:
        ranks.append(_adapter_config_rank(Path(start).expanduser() / "adapter_config.json"))
    return max((r for r in ranks if isinstance(r, int)), default=0)


def _adapter_config_rank(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("r"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # not readable yet: the trainer checks the adapter itself


def _check_text_scoring(run: ResolvedRun) -> None:
    """A source that scores text with the policy (``scores_text`` on its config) needs the in-process
    vLLM engine without LoRA: said now, not after the first evaluation."""
    options, cfg = run.blocks.get("feedback.options"), run.config
    if not getattr(options, "scores_text", False):
        return
    where = cfg.source_file or "config"
    if cfg.engine.kind != "vllm":
        raise ConfigError(
            f"{where}: 'feedback.options' make the policy score text, which needs engine.kind=vllm "
            f"(engine.kind={cfg.engine.kind} returns no prompt log-probabilities)"
        )
    if serves_adapters(run):
        raise ConfigError(
            f"{where}: 'feedback.options' make the policy score text, which vLLM cannot do on an engine "
            "serving LoRA adapters; use full fine-tuning (dpo.lora: null, no policy.adapter, final.kind: "
            "none) or turn the scoring off (e.g. candidates: 1)"
        )


def _feedback_block(cfg: RunConfig) -> Block:

    where = cfg.source_file or "config"
    source = cfg.feedback.source
    try:
        resolve_source(source)
    except RlaifError as exc:
        raise ConfigError(f"{where}: 'feedback.source': {exc}") from None
    if source in FEEDBACK_SOURCES:
        for key in RUN_DECIDES:
            if key in cfg.feedback.options:
                raise ConfigError(
                    f"{where}: 'feedback.options.{key}' is decided by the run (the top-level 'seed', "
                    "the round and the adapter the policy engine serves); remove it"
                )
        if "filter" in cfg.feedback.options:
            raise ConfigError(
                f"{where}: 'feedback.options.filter': a run filters pairs in one place, 'pairs.options' "
                "(min_margin, dedup, drop_identical, max_length_ratio); move it there"
            )
    return Block(source_config_model(source), feedback_options(cfg))


def policy_values(cfg: RunConfig) -> dict:
    return {"path": cfg.policy.path, "adapter": cfg.policy.adapter}


def _dpo_block(cfg: RunConfig) -> Block:

    first = cfg.run_dir() / "round_1"
    return Block(
        DPOConfig,
        cfg.dpo,
        defaults={"output_dir": str(first / "train"), "seed": cfg.seed + 1},
        forced={"policy": policy_values(cfg), "pairs": [str(first / "pairs" / "pairs.jsonl")]},
    )


def _final_block(cfg: RunConfig) -> Block:

    model = {"ppo": PPOConfig, "grpo": GRPOConfig, "rloo": RLOOConfig}[cfg.final.kind]
    stage_dir = cfg.run_dir() / "final" / "train"
    return Block(
        model,
        cfg.final.options,
        defaults={"output_dir": str(stage_dir), "seed": cfg.seed},
        forced={"policy": policy_values(cfg), "prompts": [str(stage_dir / "prompts.jsonl")]},
    )


def stage_policy(policy) -> object:
    """The trainers' typed policy for a run's current :class:`~rlaif.pipeline.context.Policy`."""

    return PolicySpec(path=Path(policy.path), adapter=Path(policy.adapter) if policy.adapter else None)
