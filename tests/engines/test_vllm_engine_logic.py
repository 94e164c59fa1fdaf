"""VLLMEngine decisions that need no engine: how many CPU cores vLLM may use, which top-p sampler."""

from __future__ import annotations

import pytest

from rlaif.engines import vllm as vllm_engine_module


@pytest.mark.parametrize(
    ("cpus", "preset", "expected"),
    [
        (2, None, "0"),  # a small machine: no core kept back for vLLM's scheduler
        (4, None, "0"),
        (16, None, None),  # a larger one keeps vLLM's default
        (2, "1", "1"),  # the user's own setting always wins
    ],
)
def test_small_machines_use_every_core_unless_the_user_said_otherwise(monkeypatch, cpus, preset, expected):
    monkeypatch.setattr(vllm_engine_module.os, "cpu_count", lambda: cpus)
    if preset is None:
        monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    else:
        monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", preset)
    vllm_engine_module._use_every_core_on_small_machines()
    assert vllm_engine_module.os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU") == expected


def test_the_top_p_sampler_defaults_to_rlaifs_and_an_unknown_choice_is_named(monkeypatch):
    from rlaif.engines.cpu_top_p import ENV
    from rlaif.errors import EngineError

    monkeypatch.delenv(ENV, raising=False)
    vllm_engine_module._top_p_without_full_sort()
    assert vllm_engine_module.os.environ[ENV] == "topk"
    monkeypatch.setenv(ENV, "sort")  # the user's choice stays
    vllm_engine_module._top_p_without_full_sort()
    assert vllm_engine_module.os.environ[ENV] == "sort"
    monkeypatch.setenv(ENV, "fast")
    with pytest.raises(EngineError, match="RLAIF_VLLM_TOP_P='fast' is not a top-p sampler"):
        vllm_engine_module._top_p_without_full_sort()
