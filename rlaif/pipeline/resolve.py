"""Resolving a run: every option block validated once against its stage's model, with the values
the stage sets itself, and what the resolved run's policy engine serves.

Each stage kind of the registry (:mod:`rlaif.pipeline.stage_kinds`) names its blocks (:class:`Block`):
the model of what the user sets, the user's options, the output directory and seed a user may
override, and for a trainer the config model its stage hands the trainer (the options plus the
policy and data files the run decides). :func:`resolve_run` validates what the user set once into a
:class:`ResolvedRun` (:func:`rlaif.pipeline.compile.resolve` puts registry and run together): no
input is invented to pass validation, since the files a stage trains on do not exist before the run
makes them. A stage then builds its trainer's config from the resolved block and its real inputs
(:meth:`ResolvedRun.runtime`), never by validating the user's options again.

Guarantees: an unknown or broken ``feedback.source`` is an error naming that key; values the run
decides (``seed``, ``round``, ``adapter``: see :class:`rlaif.feedback.context.SourceContext`) and the
per-source pair filter (``filter``: pairs are filtered in one place, ``pairs.options``) are refused in
a built-in source's ``feedback.options`` with a message saying where they belong; a trainer input
the run decides (``dpo.pairs``, ``final.options.policy``, ...) is refused in its block; every
validation error names the file and the key.
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
    """One option block to resolve: the model of what the user sets (None: passed on as the plain
    mapping), the user's mapping, values the stage sets when the user does not (``defaults``: its
    output folder, its seed); ``config``: the model the stage hands its trainer, i.e. ``model`` plus the
    inputs the run decides (the policy, the data files), which a user may not set; ``trains``: the
    block configures a training stage this run executes (its LoRA decides what the policy engine
    serves)."""

    model: type[BaseModel] | None
    options: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    config: type[BaseModel] | None = None
    trains: bool = False

    def run_inputs(self) -> list[str]:
        """The fields of ``config`` the run fills in at stage time (not in ``model``)."""
        if self.config is None or self.model is None:
            return []
        return [k for k in self.config.model_fields if k not in self.model.model_fields]


@dataclass(frozen=True)
class ResolvedRun:
    """A run config with every option block validated against its stage's model, once.

    ``blocks`` maps the YAML key (``feedback.options``, ``pairs.options``, ``dpo``, ``final.options``)
    to the typed model of what the user set (or the mapping, for a plug-in without a config model);
    ``configs`` the model a block becomes at stage time, with the run's inputs; ``user_keys`` holds the
    keys the user wrote in each block, so a stage knows which run-time values it may still set;
    ``training`` the keys of the blocks whose training stage the run executes.
    """

    config: RunConfig
    blocks: Mapping[str, Any]
    user_keys: Mapping[str, frozenset[str]]
    training: frozenset[str] = frozenset()
    configs: Mapping[str, type[BaseModel]] = field(default_factory=dict)

    def block(self, key: str) -> Any:
        if key not in self.blocks:
            raise ConfigError(f"'{key}' was not resolved for this run")
        return self.blocks[key]

    def runtime(self, key: str, defaults: Mapping[str, Any], forced: Mapping[str, Any]) -> Any:
        """The block with a stage's run-time values filled in: ``defaults`` where the user did not set
        the key, ``forced`` always (the inputs the run decides: typed values, not validated again)."""
        user = self.user_keys.get(key, frozenset())
        block = self.block(key)
        defaults = {**self._tracking(block, defaults.get("output_dir")), **defaults}
        kept = {**{k: v for k, v in defaults.items() if k not in user}, **forced}
        if not isinstance(block, BaseModel):
            return {**block, **kept}
        config = self.configs.get(key)
        return config.model_construct(**{**dict(block), **kept}) if config else block.model_copy(update=kept)

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
    """Validate what the user set in each block (stage defaults < user's options), nothing invented
    for the inputs the run decides; errors name the file and key."""
    file = cfg.source_file or "config"
    typed = {}
    for key, block in blocks.items():
        taken = [k for k in block.run_inputs() if k in block.options]
        if taken:
            raise ConfigError(
                f"{file}: '{key}.{taken[0]}' is decided by the run (a stage trains the policy the run "
                "has reached on the data the run made); remove it"
            )
        data = {**block.defaults, **block.options}
        typed[key] = data if block.model is None else validate_model(block.model, data, file, f"{key}.")
    keys = {key: frozenset(block.options) for key, block in blocks.items()}
    training = frozenset(key for key, block in blocks.items() if block.trains)
    configs = {key: block.config for key, block in blocks.items() if block.config is not None}
    return ResolvedRun(config=cfg, blocks=typed, user_keys=keys, training=training, configs=configs)


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
    if serves_adapters(run) and cfg.engine.adapter_serving == "lora":
        raise ConfigError(
            f"{where}: 'feedback.options' make the policy score text, which vLLM cannot do on an engine "
            "serving LoRA adapters; serve them merged (engine.adapter_serving: merged), use full "
            "fine-tuning (dpo.lora: null, no policy.adapter, final.kind: none) or turn the scoring off "
            "(e.g. candidates: 1)"
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
                "(min_margin, dedup, drop_identical, max_length_ratio, min_length_ratio); move it there"
            )
    options = feedback_options(cfg) if feedback is cfg.feedback else dict(feedback.options)
    return Block(declared.config_model, options)


def stage_policy(policy) -> object:
    """The trainers' typed policy for a run's current :class:`~rlaif.pipeline.context.Policy`."""

    return PolicySpec(path=Path(policy.path), adapter=Path(policy.adapter) if policy.adapter else None)
