"""Mid-stage training resume inside ``rlaif run`` (real CLI, real tiny model): the run is SIGKILLed during
round 1's DPO (fault hook after step 3, checkpoints every step), and the re-run resumes that DPO from
its newest checkpoint instead of step 0; no engine process outlives the kill."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import yaml
from cli_process import CliProcess

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


def test_run_killed_during_dpo_resumes_the_stage_from_its_checkpoint(tmp_path, tiny_model_dir, shared_data):
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
    resumed = CliProcess(["run", str(config)], tmp_path, "resumed")
    try:
        assert resumed.finish(timeout=900) == 0, resumed.stderr()[-3000:]
    finally:
        resumed.cleanup()
    result = json.loads(resumed.stdout())
    assert "round_1/train" in result["executed"] and "round_1/feedback" in result["skipped"]
    assert "(cached)" in resumed.stderr() or "2 cached" in resumed.stderr(), resumed.stderr()[-2000:]
    steps = [line["step"] for line in read_metrics(train / "metrics.jsonl") if "loss" in line]
    assert steps == [1, 2, 3, 4]  # 1-2 kept from the killed run, 3 redone, 4 new: none twice
    assert json.loads((train / "result.json").read_text())["counts"]["steps"] == 4
