"""The one place an :class:`~rlaif.config.EngineConfig` becomes a running engine.

Why one place: the engine used to be built in several places with different LoRA limits, so a run
training rank-32 adapters passed ``rlaif validate`` and failed when vLLM loaded the first adapter. The
pipeline and the CLI commands call :func:`build_engine` with the LoRA rank they will serve; vLLM's
``max_lora_rank`` is raised to it (never below vLLM's default 16).

Guarantees: ``lora_rank=None`` starts an engine without LoRA (it can score text); a ``max_model_len``
above a local model's context is a :class:`~rlaif.errors.ConfigError` naming ``key`` before vLLM loads.
Non-guarantee: an OpenAI-compatible server is only connected to; its LoRA limits are its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlaif.config import EngineConfig
from rlaif.errors import ConfigError
from rlaif.pipeline.preflight import check_context_length

VLLM_DEFAULT_LORA_RANK = 16


def max_lora_rank(rank: int | None) -> int:
    """The engine's ``max_lora_rank`` for adapters of rank ``rank`` (vLLM's default covers ranks <= 16)."""
    return max(VLLM_DEFAULT_LORA_RANK, rank or 0)


def api_key(cfg: EngineConfig, key: str = "engine") -> str | None:
    """The key named by ``api_key_env``, read when the engine starts (not at validation: the run may
    start elsewhere); an unset or empty variable is an error naming it rather than a 401 later."""
    if cfg.api_key_env is None:
        return None
    value = os.environ.get(cfg.api_key_env, "")
    if not value:
        raise ConfigError(f"{key}.api_key_env: the environment variable {cfg.api_key_env} is not set")
    return value


def describe_start(cfg: EngineConfig, model_path: Path | str, lora_rank: int | None) -> str:
    """What a run says when it starts an engine: the model, where its KV cache comes from, its LoRA
    limit; a run otherwise prints nothing while vLLM loads (tens of seconds, minutes on a big model)."""
    if cfg.kind == "openai":
        return f"OpenAI-compatible server(s) {', '.join(cfg.servers)} (model {cfg.model or 'served'})"
    if cfg.kind == "ray":
        return f"{cfg.replicas} Ray vLLM replica(s) of {model_path}"
    if cfg.kv_cache_gb:
        memory = f"kv cache {cfg.kv_cache_gb:g} GiB"
    elif cfg.gpu_memory_utilization:
        memory = f"gpu_memory_utilization {cfg.gpu_memory_utilization:g}"
    else:
        memory = "kv cache: the default (1 GiB on CPU)"
    lora = f"LoRA up to rank {max_lora_rank(lora_rank)}" if lora_rank is not None else "no LoRA"
    return f"vLLM on {model_path}, {memory}, max_model_len {cfg.max_model_len}, {lora}"


def build_engine(
    cfg: EngineConfig,
    model_path: Path | str,
    *,
    lora_rank: int | None,
    seed: int = 0,
    key: str = "engine",
    where: str = "config",
    log_dir: Path | None = None,
    on_start: Callable[[], None] | None = None,
) -> Any:
    """Start the engine ``cfg`` describes on ``model_path``; ``lora_rank``: the largest adapter rank it
    must serve (None: no LoRA). ``key`` names the config block in errors (``engine``, ``judge.engine``).
    ``log_dir``: where Ray replicas write their server logs (a run passes its own folder; default
    ``./ray_replicas``). ``on_start`` is called once the checks passed, just before the engine starts."""
    starting = on_start or (lambda: None)
    if cfg.kind == "openai":
        from rlaif.engines.openai import OpenAIEngine

        secret = api_key(cfg, key)
        starting()
        return OpenAIEngine(cfg.servers, model=cfg.model, concurrency=cfg.concurrency, api_key=secret)
    if cfg.kind == "ray":
        from rlaif.engines.ray_engine import ray_engine_from_config

        starting()
        return ray_engine_from_config(
            cfg, model_path, lora_rank is not None, (log_dir or Path("ray_replicas")) / key
        )

    # models built during the run (build_tiny) could not be checked by rlaif validate
    check_context_length(cfg.max_model_len, model_path, f"{key}.max_model_len", where)
    starting()
    from rlaif.engines.vllm import VLLMEngine

    kv = int(cfg.kv_cache_gb * (1 << 30)) if cfg.kv_cache_gb else None
    return VLLMEngine(
        model_path,
        seed=seed,
        max_model_len=cfg.max_model_len,
        kv_cache_memory_bytes=kv,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        tensor_parallel_size=cfg.tensor_parallel_size,
        data_parallel_size=cfg.data_parallel_size,
        enable_lora=lora_rank is not None,
        max_lora_rank=max_lora_rank(lora_rank),
        progress=False,
    )
