"""Mid-stage training resume inside ``rlaif run`` (real CLI, real tiny model): the run is SIGKILLed during
round 1's DPO (fault hook after step 3, checkpoints every step), and the re-run resumes that DPO from
its newest checkpoint instead of step 0; no engine process outlives the kill.

The killed run is a real ``rlaif run`` process (its own vLLM engine, then the trainer); the re-run is
the same :class:`Runner` in this process on the session engine, which saves starting a second engine
process: what is resumed (the DPO stage from the killed process's checkpoints) is on disk either way."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import yaml
from cli_process import CliProcess

from rlaif.config.loading import load_run_config
from rlaif.pipeline.runner import Runner
from rlaif.train.common import FAULT_ENV, read_metrics


def _config(tmp_path: Path, model: Path, shared: Path) -> Path:
    questions = str(shared / "mt-bench" / "question.jsonl")
    cfg = {
        "name": "resume",
        "seed": 3,
        "output_dir": str(tmp_path / "runs"),
        "policy": {"path": str(model)},
        "prompts": {"kind": "mtbench", "path": questions, "limit": 6},
        "feedback": {
            "source": "rlcd",
            "chunk_size": 4,
            "options": {"affixes": "rlcd_helpful", "sampling": {"max_tokens": 12}, "max_retries": 1},
        },
        "pairs": {"options": {"min_margin": None}},
        "rounds": 1,
        "dpo": {
            "max_steps": 4,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "lora": {"r": 4, "alpha": 8},
            "max_length": 256,
            "save_steps": 1,
            "save_total_limit": 2,
        },  # fmt: skip
        "engine": {"kv_cache_gb": 0.25, "max_model_len": 1024},
        "health": {"max_judge_invalid_rate": None, "min_pairs": 0},
        "eval": {
            "win_rate_prompts": {"kind": "mtbench", "path": questions, "limit": 2},
            "win_rate_limit": 2,
            "max_tokens": 8,
        },  # fmt: skip
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_killed_during_dpo_resumes_the_stage_from_its_checkpoint(
    tmp_path, tiny_model_dir, shared_data, vllm_engine, capfd
):
    config = _config(tmp_path, tiny_model_dir, shared_data)
    train = tmp_path / "runs" / "resume" / "round_1" / "train"
    killed = CliProcess(["run", str(config)], tmp_path, "killed", env={FAULT_ENV: "3"})
    try:
        assert killed.finish(timeout=900) == -signal.SIGKILL, killed.stderr()[-3000:]
        assert killed.survivors() == []
    finally:
        killed.cleanup()
    assert sorted(p.name for p in (train / "trainer").glob("checkpoint-*")) == [
        "checkpoint-1",
        "checkpoint-2",
    ]
    capfd.readouterr()
    resumed = Runner(load_run_config(config), engine=vllm_engine)
    resumed.run()
    stderr = capfd.readouterr().err
    assert "round_1/train" in resumed.executed and "round_1/feedback" in resumed.skipped
    assert "(cached)" in stderr or "2 cached" in stderr, stderr[-2000:]
    steps = [line["step"] for line in read_metrics(train / "metrics.jsonl") if "loss" in line]
    assert steps == [1, 2, 3, 4]  # 1-2 kept from the killed run, 3 redone, 4 new: none twice
    assert json.loads((train / "result.json").read_text())["counts"]["steps"] == 4
