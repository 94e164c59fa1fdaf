"""Run configuration: one YAML file per self-improvement run, validated by pydantic.

Layout, one job per module: :mod:`.base` (the one strict base and the one validator, shared with the
trainers' configs), :mod:`.run` (:class:`RunConfig` and its top-level blocks), :mod:`.engine` (the
``engine:`` and ``judge:`` blocks), :mod:`.stages` (prompts, feedback, pairs, SFT, final round,
evaluation), :mod:`.health` (the ``health:`` block) and :mod:`.loading` (YAML, overrides,
``${SHARED_DATA}``). ``RunConfig`` and ``EngineConfig``, the names the Python API uses, are importable
from here; everything else from its own module.

Guarantees:
- every model forbids unknown keys: a typo is an error naming the key path and the file;
- validation never imports torch, vllm or trl and never loads a model (``rlaif validate`` is fast).

Stage option blocks (``feedback.options``, ``pairs.options``, ``dpo``, ``final.options``, ...) are plain
mappings here, because this layer knows no component: the pipeline validates each once against its
stage's model when it resolves the run (:mod:`rlaif.pipeline.resolve`).
"""

from __future__ import annotations

from rlaif.config.engine import EngineConfig
from rlaif.config.run import RunConfig

__all__ = ["EngineConfig", "RunConfig"]
