"""``report_to: [tensorboard]``: a real one-round run on the tiny model writes the DPO trainer's curves and
the per-round metrics under ``<run>/tensorboard/``, read back with tensorboard's EventAccumulator; a
re-run that skips every stage adds no point; trackers that are unknown or not installed are config
errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from rlaif.config.loading import load_run_config
from rlaif.errors import ConfigError
from rlaif.pipeline.tracking import round_scalars


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def _config(tmp_path: Path, model: Path, **changes) -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"p{i}", "prompt": f"Name a colour, {i}."}) + "\n" for i in range(4))
    )
    cfg = {
        "name": "tracked",
        "seed": 1,
        "output_dir": str(tmp_path / "runs"),
        "policy": {"path": str(model)},
        "prompts": {"kind": "jsonl", "path": str(prompts)},
        "feedback": {
            "source": "rlcd",
            "options": {"affixes": "rlcd_helpful", "sampling": {"max_tokens": 8}, "max_retries": 1},
        },
        "pairs": {"options": {"min_margin": None}},
        "rounds": 1,
        "dpo": {
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "lora": {"r": 8, "alpha": 16},
            "max_length": 128,
        },
        "health": {"max_judge_invalid_rate": None, "min_pairs": 0, "min_judge_consistency": None},
        "eval": {
            "win_rate_prompts": {"kind": "jsonl", "path": str(prompts)},
            "win_rate_limit": 2,
            "max_tokens": 8,
        },
        "report_to": ["tensorboard"],
        **changes,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_run_logs_training_and_round_metrics_to_tensorboard(tmp_path, tiny_model_dir, vllm_engine):
    from rlaif.pipeline.runner import Runner

    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    metrics = Runner(cfg, engine=vllm_engine).run()
    board = cfg.run_dir() / "tensorboard"

    train = _scalars(board / "round_1" / "train")
    assert set(train["train/loss"]) == {1, 2}  # DPO's loss at both optimiser steps (logging_steps=1)
    logged = [json.loads(line) for line in (cfg.run_dir() / "round_1" / "train" / "metrics.jsonl").open()]
    first = next(r for r in logged if "loss" in r)
    assert train["train/loss"][first["step"]] == pytest.approx(first["loss"], rel=1e-6)

    rounds = _scalars(board / "rounds")
    pairs_kept = metrics["pairs"]["round_1"]["counts"]["pairs_kept"]
    assert rounds.get("pairs/pairs_kept") == {1: pairs_kept}, sorted(rounds)
    assert rounds["feedback/prompts_in"] == {1: 4}
    assert set(rounds["eval/mean_response_tokens"]) == {0, 1}  # the starting policy, then round 1
    assert rounds["eval/judge_invalid_rate"][1] == metrics["rounds"][1]["judge_invalid_rate"]
    assert not [tag for tag in rounds if "reasons" in tag]

    files = sorted(p.name for p in (board / "rounds").glob("events.out.tfevents.*"))
    again = Runner(load_run_config(_config(tmp_path, tiny_model_dir)), engine=vllm_engine)
    again.run()
    assert again.executed == []  # every stage skipped ...
    assert (
        sorted(p.name for p in (board / "rounds").glob("events.out.tfevents.*")) == files
    )  # ... no new point


def test_round_scalars_flatten_the_report_per_round():
    metrics = {
        "rounds": [
            {"round": 0, "label": "round 0", "pass@1": 0.25, "code_status": {"passed": 3}},
            {"round": 1, "pass@1": 0.5, "judge_invalid_rate": None, "judge_invalid_reasons": {"no A/B": 2}},
        ],
        "pairs": {"round_1": {"counts": {"pairs_kept": 7}, "drops": {"x": 1}}},
        "feedback": {"round_1": {"counts": {"pairs_out": 8}, "stats": {"invalid": 2, "source": "rlcd"}}},
        "training": {"round_1": {"summary": {"loss": 0.6}}},
    }
    assert round_scalars(metrics) == {
        ("eval/pass@1", 0): 0.25,
        ("eval/code_status/passed", 0): 3.0,
        ("eval/pass@1", 1): 0.5,
        ("pairs/pairs_kept", 1): 7.0,
        ("feedback/pairs_out", 1): 8.0,
        ("feedback/invalid", 1): 2.0,
    }


def test_report_to_names_a_tracker_that_exists_and_is_installed(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"report_to.*unknown tracker 'tb' \(choose from tensorboard"):
        load_run_config(_config(tmp_path, tiny_model_dir, report_to=["tb"]))
    missing = next((t for t in ("wandb", "trackio") if importlib.util.find_spec(t) is None), None)
    if missing is None:
        pytest.skip("wandb and trackio are both installed here")
    with pytest.raises(
        ConfigError, match=rf"report_to.*'{missing}' is not installed \(pip install {missing}\)"
    ):
        load_run_config(_config(tmp_path, tiny_model_dir, report_to=[missing]))
