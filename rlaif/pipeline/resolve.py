"""What resolving a run needs besides the registry: feedback source blocks, the values a stage sets
itself, and what the resolved run's policy engine serves.

The config layer (:func:`rlaif.config.resolve_run`) validates; each stage kind of the registry
(:mod:`rlaif.pipeline.stage_kinds`) names its blocks' models and the values its stage sets itself (the
output directory and seed a user may override, the policy, pair and prompt files a user may not);
:func:`rlaif.pipeline.compile.resolve` puts them together, so a block is validated once, with the values
the stage will really use, and the stages only fill in per-round values.

Guarantees: an unknown or broken ``feedback.source`` is an error naming that key; values the run
decides (``seed``, ``round``, ``adapter``: see :class:`rlaif.feedback.context.SourceContext`) and the
per-source pair filter (``filter``: pairs are filtered in one place, ``pairs.options``) are refused in
a built-in source's ``feedback.options`` with a message saying where they belong.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.config import Block, FeedbackConfig, ResolvedRun, RunConfig
from rlaif.errors import ConfigError, RlaifError
from rlaif.feedback.registry import BUILTINS, describe
from rlaif.pipeline.judging import feedback_options
from rlaif.train.configs import PolicySpec

RUN_DECIDES = ("seed", "round", "adapter")


def serves_adapters(run: ResolvedRun) -> bool:
    """Whether the run's policy engine may ever serve a LoRA adapter (a starting adapter, a training
    stage with LoRA, or a final RL round). If not, its engine starts without LoRA and can score text."""
    cfg = run.config
    trains_adapters = any(getattr(run.blocks[k], "lora", True) is not None for k in run.training)
    return cfg.policy.adapter is not None or trains_adapters or cfg.final.kind != "none"


def lora_rank(run: ResolvedRun) -> int | None:
    """The largest LoRA rank the policy engine will serve: every resolved block's ``lora.r`` and the
    starting adapter's ``adapter_config.json``; None when the engine serves no adapter."""
    if not serves_adapters(run):
        return None
    ranks = [getattr(getattr(run.blocks[k], "lora", None), "r", None) for k in run.training]
    start = run.config.policy.adapter
    if start:
        ranks.append(_adapter_config_rank(Path(start).expanduser() / "adapter_config.json"))
    return max((r for r in ranks if isinstance(r, int)), default=0)


def _adapter_config_rank(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("r"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # not readable yet: the trainer checks the adapter itself


def check_text_scoring(run: ResolvedRun) -> None:
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


def source_block(cfg: RunConfig, feedback: FeedbackConfig, key: str) -> Block:
    """The option block of a feedback source (``key``: where it sits in the YAML); the run's judge goes
    to the source's judge key only for the run's main ``feedback``."""
    where = cfg.source_file or "config"
    source = feedback.source
    try:
        declared = describe(source)
    except RlaifError as exc:
        raise ConfigError(f"{where}: '{key.rpartition('.')[0]}.source': {exc}") from None
    if source in BUILTINS:
        for name in RUN_DECIDES:
            if name in feedback.options:
                raise ConfigError(
                    f"{where}: '{key}.{name}' is decided by the run (the top-level 'seed', "
                    "the round and the adapter the policy engine serves); remove it"
                )
        if "filter" in feedback.options:
            raise ConfigError(
                f"{where}: '{key}.filter': a run filters pairs in one place, 'pairs.options' "
                "(min_margin, dedup, drop_identical, max_length_ratio); move it there"
            )
    options = feedback_options(cfg) if feedback is cfg.feedback else dict(feedback.options)
    return Block(declared.config_model, options)


def policy_values(cfg: RunConfig) -> dict:
    return {"path": cfg.policy.path, "adapter": cfg.policy.adapter}


def stage_policy(policy) -> object:
    """The trainers' typed policy for a run's current :class:`~rlaif.pipeline.context.Policy`."""

    return PolicySpec(path=Path(policy.path), adapter=Path(policy.adapter) if policy.adapter else None)
