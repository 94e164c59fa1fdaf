"""Mid-stage resume through the real CLI: a training stage SIGKILLed mid-way (a real subprocess, killed
by the fault hook right after an optimiser step) resumes from its newest checkpoint and ends with the
same weights as an uninterrupted run (CPU, fixed seed), for DPO and the reward model (TRL) and for our
PPO.

The killed run and the resumed one are real processes (the resume must find on disk what a killed
process left); the uninterrupted reference is the same command in this process (``rlaif.cli.main``, one
torch thread as in those processes), which saves a Python start and a torch/TRL import per test."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import yaml
from cli_process import CliProcess

from rlaif.train.common import FAULT_ENV, read_metrics

REWARD_MODULE = """
def length_reward(prompts, completions, completion_ids, **kw):
    return [len(ids) / 8.0 for ids in completion_ids]
"""


def _train(tmp_path: Path, stage: str, cfg: dict, out: Path, name: str, kill_at: int | None = None):
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**cfg, "output_dir": str(out)}))
    env = {FAULT_ENV: str(kill_at)} if kill_at else {}
    with CliProcess(["train", stage, "--config", str(config)], tmp_path, name, env=env) as cli:
        code = cli.finish(timeout=600)
        assert cli.survivors() == []
    return code, cli


def _train_here(tmp_path: Path, stage: str, cfg: dict, out: Path, monkeypatch) -> int:
    """``rlaif train STAGE --config`` in this process, run from ``tmp_path`` as the processes are (so a
    reward module written there imports); the train tests' autouse fixture holds torch to one thread,
    as ``OMP_NUM_THREADS=1`` does in the processes."""
    import torch

    from rlaif.cli import main

    assert torch.get_num_threads() == 1
    config = tmp_path / "whole.yaml"
    config.write_text(yaml.safe_dump({**cfg, "output_dir": str(out)}))
    loaded = set(sys.modules)
    with monkeypatch.context() as m:
        m.chdir(tmp_path)
        m.syspath_prepend(str(tmp_path))
        m.delenv(FAULT_ENV, raising=False)
        try:
            return main(["train", stage, "--config", str(config)])
        finally:  # the reward module is this test's: another test's file of the same name is another
            for name in set(sys.modules) - loaded:
                if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
                    del sys.modules[name]


def _whole_then_killed(tmp_path: Path, stage: str, cfg: dict, kill_at: int, monkeypatch) -> Path:
    """Train ``cfg`` uninterrupted into ``whole/`` (in this process), then again into ``resumed/``
    (returned) in a real process, SIGKILLed by the fault hook right after optimiser step ``kill_at``."""
    assert _train_here(tmp_path, stage, cfg, tmp_path / "whole", monkeypatch) == 0
    out = tmp_path / "resumed"
    code, killed = _train(tmp_path, stage, cfg, out, "killed", kill_at=kill_at)
    assert code == -signal.SIGKILL, killed.stderr()[-2000:]
    return out


def _resume(tmp_path: Path, stage: str, cfg: dict, out: Path) -> CliProcess:
    """The same command again into the killed run's ``out``: it must finish."""
    code, resumed = _train(tmp_path, stage, cfg, out, "resumed")
    assert code == 0, resumed.stderr()[-3000:]
    return resumed


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _assert_same_weights(tmp_path: Path, out: Path, weights: str) -> None:
    """``weights`` (a path under the output folder) of the resumed run equal the uninterrupted run's."""
    import torch

    ta, tb = _tensors(tmp_path / "whole" / weights), _tensors(out / weights)
    assert ta.keys() == tb.keys() and ta
    for key in ta:
        assert torch.allclose(ta[key], tb[key], rtol=0, atol=1e-6), key


def _check_resumed_metrics(path: Path, steps: int) -> None:
    assert [line["step"] for line in read_metrics(path) if "loss" in line or "score" in line] == list(
        range(1, steps + 1)
    )  # the steps before the checkpoint kept, the lost ones redone once, none twice


def test_dpo_killed_mid_stage_resumes_to_the_same_weights(
    tmp_path, tiny_model_dir, dpo_pairs_file, monkeypatch
):
    cfg = {
        "policy": {"path": str(tiny_model_dir)},
        "pairs": [str(dpo_pairs_file)],
        "max_steps": 6,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "lora": {"r": 4, "alpha": 8},
        "save_steps": 2,
        "save_total_limit": 2,
    }
    out = _whole_then_killed(tmp_path, "dpo", cfg, 5, monkeypatch)
    assert sorted(p.name for p in (out / "trainer").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (out / "adapter").exists()
    resumed = _resume(tmp_path, "dpo", cfg, out)
    assert json.loads(resumed.stdout())["counts"]["steps"] == 6
    assert f"dpo: resuming from {out / 'trainer' / 'checkpoint-4'} (step 4)" in resumed.stderr()
    assert "4 cached" in resumed.stderr() or "(cached)" in resumed.stderr(), resumed.stderr()[-2000:]
    _check_resumed_metrics(out / "metrics.jsonl", 6)
    _assert_same_weights(tmp_path, out, "adapter/adapter_model.safetensors")


def test_reward_model_killed_mid_stage_resumes_to_the_same_weights(
    tmp_path, tiny_model_dir, rm_pairs_file, monkeypatch
):
    cfg = {
        "model": str(tiny_model_dir),
        "pairs": [str(rm_pairs_file)],
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "save_steps": 2,
    }
    out = _whole_then_killed(tmp_path, "reward-model", cfg, 5, monkeypatch)
    resumed = _resume(tmp_path, "reward-model", cfg, out)
    assert f"reward_model: resuming from {out / 'trainer' / 'checkpoint-4'} (step 4)" in resumed.stderr()
    assert "(cached)" in resumed.stderr() or "4 cached" in resumed.stderr(), resumed.stderr()[-2000:]
    _check_resumed_metrics(out / "metrics.jsonl", 6)
    _assert_same_weights(tmp_path, out, "model/model.safetensors")


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_ppo_killed_mid_stage_resumes_to_the_same_weights(
    tmp_path, tiny_model_dir, prompts_file, lora, monkeypatch
):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)  # importable: the CLI runs in tmp_path
    cfg = {
        "policy": {"path": str(tiny_model_dir)},
        "prompts": [str(prompts_file)],
        "reward": {"function": "my_rewards:length_reward"},
        "max_steps": 5,
        "batch_size": 4,
        "minibatch_size": 2,
        "ppo_epochs": 2,
        "max_completion_length": 6,
        "learning_rate": 1e-3,
        "adaptive_kl": True,
        "kl_target": 0.1,
        "normalize_rewards": True,
        "save_steps": 2,
        "save_total_limit": 1,
    }
    if not lora:
        cfg["lora"] = None
    out = _whole_then_killed(tmp_path, "ppo", cfg, 3, monkeypatch)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000002"]
    resumed = _resume(tmp_path, "ppo", cfg, out)
    assert "ppo: resumed from the checkpoint after step 2 of 5" in resumed.stderr()
    result = json.loads(resumed.stdout())
    assert result["counts"]["steps"] == 5 and len(result["extra"]["score_curve"]) == 5
    _check_resumed_metrics(out / "metrics.jsonl", 5)
    assert not (out / "checkpoints").exists()  # removed once the stage finished
    weights = "adapter/adapter_model.safetensors" if lora else "model/model.safetensors"
    _assert_same_weights(tmp_path, out, weights)
    _assert_same_weights(tmp_path, out, "critic/model.safetensors")


def test_only_complete_checkpoints_made_under_the_same_key_are_resumed(tmp_path):
    from types import SimpleNamespace

    from rlaif.train.common import resume_checkpoint

    args = SimpleNamespace(save_strategy="steps", output_dir=str(tmp_path / "trainer"), process_index=0)
    assert resume_checkpoint(args, "k1") is None  # nothing yet
    for step in (2, 4, 10):
        (tmp_path / "trainer" / f"checkpoint-{step}").mkdir()
    for step in (2, 4):  # checkpoint-10 was cut short by the kill: no trainer_state.json
        (tmp_path / "trainer" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resume_checkpoint(args, "k1") == str(tmp_path / "trainer" / "checkpoint-4")
    assert not (tmp_path / "trainer" / "checkpoint-10").exists()
    assert resume_checkpoint(args, "k2") is None  # other settings or data: start over
    assert not list((tmp_path / "trainer").glob("checkpoint-*"))
    assert resume_checkpoint(SimpleNamespace(save_strategy="no"), "k2") is None


def test_grpo_killed_mid_stage_resumes_to_the_same_weights(
    tmp_path, tiny_model_dir, prompts_file, monkeypatch
):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    cfg = {
        "policy": {"path": str(tiny_model_dir)},
        "prompts": [str(prompts_file)],
        "rewards": [{"function": "my_rewards:length_reward"}],
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 8,
        "max_steps": 4,
        "learning_rate": 5e-3,
        "lora": {"r": 4, "alpha": 8},
        "save_steps": 2,
    }
    out = _whole_then_killed(tmp_path, "grpo", cfg, 3, monkeypatch)
    resumed = _resume(tmp_path, "grpo", cfg, out)
    assert f"grpo: resuming from {out / 'trainer' / 'checkpoint-2'} (step 2)" in resumed.stderr()
    _check_resumed_metrics(out / "metrics.jsonl", 4)
    _assert_same_weights(tmp_path, out, "adapter/adapter_model.safetensors")
