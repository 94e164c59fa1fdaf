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
    return resolve_run(cfg, blocks)


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
