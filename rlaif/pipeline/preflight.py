"""Checks that need the run's files but no model: data sets and context lengths.

``rlaif validate`` and ``rlaif run`` call :func:`read_inputs` and :func:`check_context_lengths` before
any engine starts, so a malformed data set or an impossible ``max_model_len`` is reported in seconds,
naming the file or key, instead of after vLLM has loaded a model. The runner repeats the context check
right before it starts an engine, for models that did not exist at validation time (``build_tiny``).

Non-guarantees: a model given by hub name (no local ``config.json``) is not checked; the limit read is
the model's ``max_position_embeddings`` (or its equivalents) times a RoPE scaling factor, which is what
vLLM derives for the common models but not every exotic scaling scheme.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.config import RunConfig
from rlaif.errors import ConfigError, RlaifError
from rlaif.pipeline.inputs import read_prompt_source
from rlaif.pipeline.model_paths import check_model_paths

_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")


def model_context_length(model: str | Path) -> tuple[int, str] | None:
    """The longest context a local model supports, and where that number came from; None if unknown."""
    cfg_file = Path(model).expanduser() / "config.json"
    if not cfg_file.is_file():
        return None
    try:
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # vLLM will say what is wrong with the model itself
    for node in (data, data.get("text_config") or {}):
        for key in _LENGTH_KEYS:
            value = node.get(key)
            if isinstance(value, int) and value > 0:
                rope = node.get("rope_scaling") or data.get("rope_scaling") or {}
                factor = rope.get("factor") if isinstance(rope, dict) else None
                if isinstance(factor, (int, float)) and factor > 1:
                    return int(value * factor), f"{key}={value} x rope factor {factor:g} in {cfg_file}"
                return value, f"{key}={value} in {cfg_file}"
    return None


def check_context_length(max_model_len: int | None, model: str | Path, key: str, where: str) -> None:
    """A ``max_model_len`` above the model's context is a :class:`ConfigError` naming ``key``."""
    if max_model_len is None:
        return
    known = model_context_length(model)
    if known is not None and max_model_len > known[0]:
        raise ConfigError(
            f"{where}: '{key}' is {max_model_len}, more than the model's context length {known[0]} "
            f"({known[1]}); set {key}={known[0]} or less"
        )


def check_context_lengths(cfg: RunConfig) -> None:
    """The policy engine's and the judge engine's ``max_model_len`` against their models (after every
    model and adapter path was checked)."""
    check_model_paths(cfg)
    where = cfg.source_file or "config"
    if cfg.engine.kind == "vllm":
        check_context_length(cfg.engine.max_model_len, cfg.policy.path, "engine.max_model_len", where)
    judge = cfg.judge
    if judge.model not in ("policy", "openai"):
        engine = judge.engine or cfg.engine
        if engine.kind == "vllm":
            key = "judge.engine.max_model_len" if judge.engine else "engine.max_model_len"
            check_context_length(engine.max_model_len, judge.model, key, where)


def read_inputs(cfg: RunConfig) -> dict[str, dict]:
    """Read every data file the run will read (prompts, eval sets); returns per key what was read.

    Malformed records are skipped and counted, or raise (``malformed: error``), exactly as the stages
    will; a missing file or one with no usable record is an error naming the key.
    """

    where = cfg.source_file or "config"
    out = {}
    more = cfg.eval.instructions.more_sets if cfg.eval.instructions else {}
    for name, src in (
        ("prompts", cfg.prompts),
        ("eval.code_problems", cfg.eval.code_problems),
        ("eval.win_rate_prompts", cfg.eval.win_rate_prompts),
        ("eval.instructions.prompts", cfg.eval.instructions.prompts if cfg.eval.instructions else None),
        *((f"eval.instructions.more_sets.{k}", v) for k, v in more.items()),
    ):
        if src is None:
            continue
        if src.kind != "demo_code":
            if not src.path:
                raise ConfigError(f"{where}: '{name}.path' is required for kind={src.kind}")
            if not Path(src.path).exists():
                raise ConfigError(f"{where}: '{name}.path': file not found: {src.path}")
        try:
            data = read_prompt_source(src, name)
        except RlaifError as exc:
            raise ConfigError(f"{where}: '{name}': {exc}") from None
        out[name] = {"records": len(data.items), **data.skipped_summary()}
    return out
