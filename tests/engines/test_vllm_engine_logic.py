"""The environment rlaif gives vLLM's processes, decided without an engine: how many CPU cores vLLM may use,
which top-p sampler; the in-process engine and the served replicas get the same."""

from __future__ import annotations

import pytest

from rlaif.engines import vllm_env


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
    monkeypatch.setattr(vllm_env.os, "cpu_count", lambda: cpus)
    environ = {} if preset is None else {"VLLM_CPU_NUM_OF_RESERVED_CPU": preset}
    environ.update(vllm_env.vllm_process_environment(environ))
    assert environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU") == expected


def test_the_top_p_sampler_defaults_to_rlaifs_and_an_unknown_choice_is_named():
    from rlaif.engines.cpu_top_p import ENV
    from rlaif.errors import EngineError

    assert vllm_env.vllm_process_environment({})[ENV] == "topk"
    assert vllm_env.vllm_process_environment({ENV: "sort"})[ENV] == "sort"  # the user's choice stays
    with pytest.raises(EngineError, match="RLAIF_VLLM_TOP_P='fast' is not a top-p sampler"):
        vllm_env.vllm_process_environment({ENV: "fast"})


def test_a_served_replica_starts_with_the_engines_environment(tmp_path, monkeypatch):
    """``launch_replica`` hands the server the same variables: a real child process prints them."""
    import json
    import sys

    from rlaif.engines.cpu_top_p import ENV
    from rlaif.engines.serve import launch_replica
    from rlaif.errors import EngineError

    monkeypatch.setattr(vllm_env.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    monkeypatch.setenv(ENV, "sort")
    names = [ENV, "VLLM_CPU_NUM_OF_RESERVED_CPU"]
    show = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    replica = launch_replica([sys.executable, "-c", show], "127.0.0.1", 1, tmp_path / "replica.log")
    assert replica.proc.wait(timeout=60) == 0
    seen = json.loads((tmp_path / "replica.log").read_text().strip().splitlines()[-1])
    assert seen == {ENV: "sort", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    monkeypatch.setenv(ENV, "fast")
    with pytest.raises(EngineError, match="RLAIF_VLLM_TOP_P='fast'"):
        launch_replica([sys.executable, "-c", "pass"], "127.0.0.1", 1, tmp_path / "refused.log")
