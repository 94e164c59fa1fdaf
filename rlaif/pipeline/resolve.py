"""Resolving a run: every option block validated once against its stage's model, with the values
the stage sets itself, and what the resolved run's policy engine serves.

Each stage kind of the registry (:mod:`rlaif.pipeline.stage_kinds`) names its blocks (:class:`Block`):
the model, the user's options, the output directory and seed a user may override, the policy, pair
and prompt files a user may not. :func:`resolve_run` validates them once into a :class:`ResolvedRun`
(:func:`rlaif.pipeline.compile.resolve` puts registry and run together), so a block is validated with
the values the stage will really use and stages only fill in per-round values with ``model_copy``,
never by validating again.

Guarantees: an unknown or broken ``feedback.source`` is an error naming that key; values the run
decides (``seed``, ``round``, ``adapter``: see :class:`rlaif.feedback.context.SourceContext`) and the
per-source pair filter (``filter``: pairs are filtered in one place, ``pairs.options``) are refused in
a built-in source's ``feedback.options`` with a message saying where they belong; every validation
error names the file and the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlaif.config import RunConfig
from rlaif.config.base import validate_model
from rlaif.config.stages import FeedbackConfig
from rlaif.errors import ConfigError, RlaifError
from rlaif.feedback.registry import BUILTINS, describe
from rlaif.pipeline.judging import feedback_options
from rlaif.train.configs import PolicySpec

RUN_DECIDES = ("seed", "round", "adapter")


# -- every option block validated once -----------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One option block to resolve: its config model (None: passed on as the plain mapping), the
    user's mapping, values the stage sets when the user does not (``defaults``) and values the stage
    always sets itself (``forced``, e.g. the policy a round starts from); ``trains``: the block
    configures a training stage this run executes (its LoRA decides what the policy engine serves)."""

    model: type[BaseModel] | None
    options: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    forced: Mapping[str, Any] = field(default_factory=dict)
    trains: bool = False


@dataclass(frozen=True)
class ResolvedRun:
    """A run config with every option block validated against its stage's model, once.

    ``blocks`` maps the YAML key (``feedback.options``, ``pairs.options``, ``dpo``, ``final.options``)
    to the typed model (or the mapping, for a plug-in without a config model); ``user_keys`` holds the
    keys the user wrote in each block, so a stage knows which run-time values it may still set;
    ``training`` the keys of the blocks whose training stage the run executes.
    """

    config: RunConfig
    blocks: Mapping[str, Any]
    user_keys: Mapping[str, frozenset[str]]
    training: frozenset[str] = frozenset()

    def block(self, key: str) -> Any:
        if key not in self.blocks:
            raise ConfigError(f"'{key}' was not resolved for this run")
        return self.blocks[key]

    def runtime(self, key: str, defaults: Mapping[str, Any], forced: Mapping[str, Any]) -> Any:
        """The block with a stage's run-time values filled in: ``defaults`` where the user did not set
        the key, ``forced`` always (typed values: they are not validated again)."""
        user = self.user_keys.get(key, frozenset())
        block = self.block(key)
        defaults = {**self._tracking(block, defaults.get("output_dir")), **defaults}
        kept = {**{k: v for k, v in defaults.items() if k not in user}, **forced}
        return block.model_copy(update=kept) if isinstance(block, BaseModel) else {**block, **kept}

    def _tracking(self, block: Any, stage_dir: Any) -> dict[str, Any]:
        """A trainer block's report_to is the run's, its tensorboard folder the stage's own under
        ``<run>/tensorboard/`` (``round_1/train``, ...), so one ``tensorboard --logdir`` shows the run."""
        if not isinstance(block, BaseModel) or "report_to" not in type(block).model_fields:
            return {}
        out = {"report_to": list(self.config.report_to)}
        if stage_dir is not None:
            out["logging_dir"] = self.config.tracking_dir(stage_dir)
        return out


def resolve_run(cfg: RunConfig, blocks: Mapping[str, Block]) -> ResolvedRun:
    """Validate each block (defaults < user's options < forced values); errors name the file and key."""
    file = cfg.source_file or "config"
    typed = {}
    for key, block in blocks.items():
        data = {**block.defaults, **block.options, **block.forced}
        typed[key] = data if block.model is None else validate_model(block.model, data, file, f"{key}.")
    keys = {key: frozenset(block.options) for key, block in blocks.items()}
    training = frozenset(key for key, block in blocks.items() if block.trains)
    return ResolvedRun(config=cfg, blocks=typed, user_keys=keys, training=training)


# -- what the resolved run needs ----------------------------------------------------------------------


def serves_adapters(run: ResolvedRun) -> bool:
    """Whether the run's policy engine may ever serve a LoRA adapter (a starting adapter, a training
    stage with LoRA, or a final RL round). If not, its engine starts without LoRA and can score text."""
    cfg = run.config
    trains_adapters = any(getattr(run.blocks[k], "lora", True) is not None for k in run.training)
    return cfg.policy.adapter is not None or trains_adapters  # a final round counts by its own lora


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
