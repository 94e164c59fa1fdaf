"""A pipeline round on ``engine: {kind: ray, replicas: 2}``: a local Ray cluster with two CPU vLLM
replicas generates the round-0 evaluation and the RLCD feedback, DPO trains full weights (Ray
replicas serve no LoRA adapters), and the round-1 evaluation runs on two fresh replicas of the new
weights (slow: four ``vllm serve`` starts and a DPO step, several minutes on two cores); and
``rlaif validate`` refusing Ray replicas for a run that trains LoRA adapters."""

from __future__ import annotations

import json

import pytest
import yaml

from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError
from rlaif.pipeline.compile import compile_run
from rlaif.records import iter_json_lines


def _config(tmp_path, model, shared) -> dict:
    questions = str(shared / "mt-bench" / "question.jsonl")
    return {
        "name": "ray-round",
        "seed": 3,
        "output_dir": str(tmp_path / "runs"),
        "policy": {"path": str(model)},
        "engine": {
            "kind": "ray",
            "replicas": 2,
            "replica_cpus": 1,
            "max_model_len": 512,
            "kv_cache_gb": 0.125,
            "concurrency": 4,
        },
        "prompts": {"kind": "mtbench", "path": questions, "limit": 8},
        "feedback": {
            "source": "rlcd",
            "chunk_size": 8,
            "options": {"affixes": "rlcd_helpful", "sampling": {"max_tokens": 12}, "max_retries": 1},
        },
        "pairs": {"options": {"min_margin": None}},
        "rounds": 1,
        "dpo": {"max_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 5e-3, "lora": None},
        "health": {"max_judge_invalid_rate": None, "min_pairs": 0},
        "eval": {
            "win_rate_prompts": {"kind": "mtbench", "path": questions},
            "win_rate_limit": 4,
            "max_tokens": 8,
        },
    }


def test_validate_refuses_ray_replicas_for_a_run_that_trains_adapters(run_config):
    engine = {"kind": "ray", "replicas": 2}
    with pytest.raises(
        ConfigError, match="'engine.kind': Ray replicas cannot serve the LoRA adapters"
    ) as info:
        compile_run(run_config(engine=engine))  # DPO trains a LoRA adapter by default
    assert "\n" not in str(info.value) and "dpo.lora: null" in str(info.value)
    assert compile_run(run_config(engine=engine, dpo={"lora": None})).lora_rank is None


def _answers(stage_dir) -> dict:
    return {
        r["id"]: r["text"] for _, r in iter_json_lines(stage_dir / "samples.jsonl") if r["kind"] == "answer"
    }


@pytest.mark.slow
def test_a_round_on_two_ray_replicas_serves_the_trained_weights(
    tmp_path, tiny_model_dir, shared_data, monkeypatch
):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rlaif[ray]'")
    from rlaif.pipeline.runner import Runner

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, tiny_model_dir, shared_data)))
    cfg = load_run_config(path)
    runner = Runner(cfg)
    try:
        runner.run()
    finally:
        if ray.is_initialized():
            ray.shutdown()
    run = cfg.run_dir()
    assert "round_1/eval" in runner.executed
    pairs = [r for _, r in iter_json_lines(run / "round_1" / "pairs" / "pairs.jsonl")]
    assert pairs, "the replicas' generations made no preference pair"
    summary = json.loads((run / "round_1" / "train" / "manifest.json").read_text())["summary"]
    assert summary["counts"]["steps"] == 1

    # the policy engine was started twice, each time as two Ray replicas: on the starting model, then
    # on the trained full weights
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    starts = [e["model"] for e in events if e["event"] == "engine_start"]
    assert len(starts) == 2 and starts[0] == str(tiny_model_dir) and starts[1] != starts[0], starts
    logs = sorted((run / "ray_replicas").rglob("replica-*.log"))
    assert not (tmp_path / "ray_replicas").exists(), "replica logs belong in the run folder"
    assert len(logs) == 4, logs
    # the same per-record seeds gave other answers in round 1: the new weights were served
    before, after = _answers(run / "round_0" / "eval"), _answers(run / "round_1" / "eval")
    assert before.keys() == after.keys() and len(before) == 4
    assert before != after
